"""The rules engine: AWS IoT SQL (pure: lexer, parser, evaluator, functions, templates),
rule sources (YAML, CloudFormation) and the engine that routes messages to actions."""
