"""Where policies come from: ``--policy FILE`` documents, rule files and templates."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from emulator.project.model import PolicyError, PolicySpec


def load_policy_files(
    paths: Iterable[Path], region: str = "us-east-1", account_id: str = "123456789012"
) -> list[PolicySpec]:
    """Each path is a policy document (AWS JSON, or the same in YAML), or a rule file,
    template or folder whose policies (``policies:``, ``AWS::IoT::Policy``) are taken."""
    from emulator.project.loader import load_project

    out: list[PolicySpec] = []
    for path in paths:
        path = Path(path)
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text())
            except OSError as exc:
                raise PolicyError(f"cannot read {path}: {exc.strerror}") from exc
            except yaml.YAMLError:
                data = None  # a template's !Ref tags: the project loader reads those
            if isinstance(data, dict) and "Statement" in data:
                out.append(PolicySpec(path.stem, data))
                continue
        elif not path.exists():
            raise PolicyError(f"{path}: no such file or folder")
        project = load_project([path], region, account_id)
        if project.errors:
            raise PolicyError("; ".join(str(d) for d in project.errors))
        if not project.policies:
            raise PolicyError(f"{path}: neither a policy document nor a file with policies")
        out.extend(project.policies)
    return out
