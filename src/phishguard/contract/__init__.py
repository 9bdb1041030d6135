"""The data contract: the schema's domains, the checks every input passes, the one CSV reader."""
