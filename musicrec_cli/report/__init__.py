"""`musicrec report` and the evaluate tables.

tables.py: the models x metrics tables (terminal and HTML); html.py: the self-contained page;
plots.py: its matplotlib figures (imported only while the page is drawn).
"""
