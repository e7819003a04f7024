"""AWS IoT SQL, the language: lexer, parser, compiler and evaluator, functions, values,
substitution templates. Pure: no I/O, clock, randomness or environment."""
