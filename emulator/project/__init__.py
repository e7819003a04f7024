"""The project: what a deployment declares (rules, functions, tables, streams, policies),
its model and its loaders (native YAML, CloudFormation/SAM, policy files, file watching)."""
