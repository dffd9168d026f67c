#!/bin/sh
# An overseer `command` job in plain shell: the run context arrives in the environment, the
# output is kept as the run's stdout.log / stderr.log, and a JSON object written to
# $OVERSEER_OUTPUT becomes the run's result. A non-zero exit fails the run (and is retried
# per the job's policy).
set -eu
echo "run $OVERSEER_RUN_ID of $OVERSEER_JOB_NAME (attempt $OVERSEER_ATTEMPT, fire $OVERSEER_FIRE_AT)"
files=$(find "${REPORT_DIR:-.}" -type f | wc -l)
echo "counted $files files in ${REPORT_DIR:-.}" >&2
printf '{"files": %s, "dir": "%s"}\n' "$files" "${REPORT_DIR:-.}" > "$OVERSEER_OUTPUT"
