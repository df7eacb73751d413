"""The report: the paper's numbers as data and the verdicts (``paper``), the tables (``tables``), charts
(``charts``), image figures (``images``), the figures job that draws both (``figures``), the epoch-budget
table (``budgets``) and run-against-run comparison (``compare``).
"""
