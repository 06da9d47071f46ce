#!/bin/sh
# One-shot set-up of MinIO for the stack, safe to run on every `docker compose up`:
#   1. the bucket MLOPS_S3_BUCKET (asset data under s3://<bucket>/, MLflow artifacts under /mlflow);
#   2. a policy allowing object access to that bucket only;
#   3. the application user AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with that policy attached.
# The services use that user, never the MinIO root account (MINIO_ROOT_USER stays here and in minio).
# Runs in quay.io/minio/mc (a minimal image: POSIX sh and mc, no grep/jq, hence the `case`s).
set -eu

: "${MINIO_ROOT_USER:?set MINIO_ROOT_USER (docker/stack.env)}"
: "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD (docker/stack.env)}"
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (docker/stack.env)}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY (docker/stack.env)}"
: "${MLOPS_S3_BUCKET:?set MLOPS_S3_BUCKET}"
endpoint=${MINIO_ENDPOINT:-http://minio:9000}

if [ "$AWS_ACCESS_KEY_ID" = "$MINIO_ROOT_USER" ]; then
  echo "minio-init: AWS_ACCESS_KEY_ID must differ from MINIO_ROOT_USER (the services get their own user)" >&2
  exit 1
fi

# mc keeps the root credentials in its config: in this container's /tmp, gone when it exits.
export MC_CONFIG_DIR=/tmp/.mc
mc alias set stack "$endpoint" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null

mc mb --ignore-existing "stack/$MLOPS_S3_BUCKET"

policy="$MLOPS_S3_BUCKET-readwrite"
policy_file=/tmp/policy.json
printf '%s\n' \
  '{' \
  '  "Version": "2012-10-17",' \
  '  "Statement": [' \
  '    {' \
  '      "Effect": "Allow",' \
  '      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],' \
  "      \"Resource\": [\"arn:aws:s3:::$MLOPS_S3_BUCKET\"]" \
  '    },' \
  '    {' \
  '      "Effect": "Allow",' \
  '      "Action": ["s3:*"],' \
  "      \"Resource\": [\"arn:aws:s3:::$MLOPS_S3_BUCKET/*\"]" \
  '    }' \
  '  ]' \
  '}' >"$policy_file"
# `policy create` replaces a policy of that name; should a release refuse instead, the existing
# one (same name, same bucket, same content) is kept.
mc admin policy create stack "$policy" "$policy_file" >/dev/null \
  || mc admin policy info stack "$policy" >/dev/null

# Adding an existing user sets its secret key: a key rotated in stack.env takes effect here.
mc admin user add stack "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" >/dev/null

attached() {
  case "$(mc admin user info stack "$AWS_ACCESS_KEY_ID")" in
    *"$policy"*) return 0 ;;
    *) return 1 ;;
  esac
}
# `policy attach` fails when the policy is already attached: attach only when it is not, and
# accept a failed attach when the policy turns out to be in effect.
attached || mc admin policy attach stack "$policy" --user "$AWS_ACCESS_KEY_ID" >/dev/null || attached

echo "minio-init: bucket $MLOPS_S3_BUCKET ready; user $AWS_ACCESS_KEY_ID has policy $policy"
