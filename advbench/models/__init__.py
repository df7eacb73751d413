"""The models of the paper: architectures (``architectures``: softmax and logistic regression, the maxout
MLP, RBF, the conv maxout, GoogLeNet) and their output heads (``heads``).
"""
