"""arrowlog's Arrow Flight front end: Flight SQL and plain Flight verbs."""
