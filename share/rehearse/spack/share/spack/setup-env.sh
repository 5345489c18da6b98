# Spack, stood in by bedrock-deploy rehearse (docs/rehearse.md): sourcing this defines the
# 'spack' function of a Spack installation, of which only 'spack env activate [--sh] DIR' is
# emulated (the environment must pass 'bedrock-deploy spack check'; its bedrock, bedrock-query
# and bedrock-shutdown are the embedded engine). A rehearsal binds this directory over the
# SPACK_ROOT its job script records; outside a rehearsal it refuses to do anything.
spack() {
  if [ -z "${BEDROCK_REHEARSAL_CONTEXT:-}" ] || [ -z "${BEDROCK_REHEARSAL_PYTHON:-}" ]; then
    echo "spack: this is bedrock-deploy rehearse's stand-in, usable inside a rehearsal only" >&2
    return 1
  fi
  if [ "${1:-}" = env ] && [ "${2:-}" = activate ]; then
    case " $* " in
      *" --sh "*) "$BEDROCK_REHEARSAL_PYTHON" -m bedrock_deploy.rehearse.tool \
                    "$BEDROCK_REHEARSAL_CONTEXT" spack "$@" ;;
      *) eval "$("$BEDROCK_REHEARSAL_PYTHON" -m bedrock_deploy.rehearse.tool \
                    "$BEDROCK_REHEARSAL_CONTEXT" spack "$@")" ;;
    esac
  else
    "$BEDROCK_REHEARSAL_PYTHON" -m bedrock_deploy.rehearse.tool "$BEDROCK_REHEARSAL_CONTEXT" \
      spack "$@"
  fi
}
