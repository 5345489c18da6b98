"""Run by ``bedrock-deploy spack check``:
``spack python spack_api_check.py ENV_DIR [--concretize]``.

Uses Spack's own Python API (calls verified with Spack 1.1.0: lib/spack/spack/config.py,
environment/environment.py and spec.py of https://github.com/spack/spack/tree/v1.1.0; see
docs/platform-notes.md, "Spack"): validate the manifest against Spack's environment schema,
validate every root spec (package, variant names and values; every bad spec is reported, where
the CLI stops at the first), then optionally concretize and write spack.lock.
Prints one line ``BEDROCK_DEPLOY_RESULT {json}`` for the caller to parse.
"""

import json
import os
import sys

MARK = "BEDROCK_DEPLOY_RESULT "


def main(argv):
    env_dir = os.path.abspath(argv[0])
    concretize = "--concretize" in argv[1:]
    manifest = os.path.join(env_dir, "spack.yaml")
    out = {"spack_version": None, "errors": [], "specs": [], "concretized": [], "lock": None}
    import spack
    import spack.config
    import spack.environment as ev
    import spack.error
    import spack.schema.env
    import spack.spec
    import spack.util.spack_yaml as syaml

    out["spack_version"] = getattr(spack, "spack_version", None)
    try:
        with open(manifest) as f:
            data = syaml.load_config(f)
        spack.config.validate(data, spack.schema.env.schema, filename=manifest)
    except spack.error.SpackError as err:
        out["errors"].append({"stage": "schema", "message": str(err)})
        return out
    env = ev.Environment(env_dir)
    with env:
        for s in env.user_specs.specs:
            try:
                spack.spec.Spec(str(s)).validate_or_raise()
                out["specs"].append(str(s))
            except spack.error.SpackError as err:
                out["errors"].append({"stage": "spec", "spec": str(s), "message": str(err)})
        if out["errors"] or not concretize:
            return out
        try:
            with env.write_transaction():
                pairs = env.concretize(force=True)
                env.write()
        except spack.error.SpackError as err:
            out["errors"].append({"stage": "concretize", "message": str(err)})
            return out
        out["concretized"] = [c.format("{name}{@version}") for _, c in pairs]
        out["lock"] = os.path.join(env_dir, "spack.lock")
    return out


if __name__ == "__main__":
    print(MARK + json.dumps(main(sys.argv[1:])))
