"""The live console: /console, its event stream and forms (issue 18)."""
