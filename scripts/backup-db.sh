#!/usr/bin/env bash
# Backs up the gateway's PostgreSQL database: pg_dump | gzip into BACKUP_DIR, then, when
# BACKUP_BUCKET is set, uploads the file to s3://BACKUP_BUCKET/database/ with the aws CLI.
# Keeps 7 days of local files and the newest 30 in the bucket. Run by deploy/k8s/backup-cronjob.yaml.
#
# Environment: DATABASE_URL (required), BACKUP_DIR (default /backups), BACKUP_BUCKET (optional).
set -euo pipefail

: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
BACKUP_DIR="${BACKUP_DIR:-/backups}"
TIMESTAMP="$(date -u +%Y%m%d_%H%M%S)"
BACKUP_FILE="${BACKUP_DIR}/datahub_${TIMESTAMP}.sql.gz"

mkdir -p "$BACKUP_DIR"

# Written under a temporary name, so a failed dump never looks like a finished backup.
pg_dump --no-owner "$DATABASE_URL" | gzip >"${BACKUP_FILE}.partial"
mv "${BACKUP_FILE}.partial" "$BACKUP_FILE"

if [[ -n "${BACKUP_BUCKET:-}" ]]; then
  aws s3 cp "$BACKUP_FILE" "s3://${BACKUP_BUCKET}/database/"

  # Keep the newest 30 backups in the bucket (names sort by time).
  aws s3 ls "s3://${BACKUP_BUCKET}/database/" |
    awk '{print $4}' |
    grep '^datahub_.*\.sql\.gz$' |
    sort |
    head -n -30 |
    xargs -r -I {} aws s3 rm "s3://${BACKUP_BUCKET}/database/{}"
fi

# Local backups older than 7 days go.
find "$BACKUP_DIR" -name 'datahub_*.sql.gz' -mtime +7 -delete

echo "Backup completed: $BACKUP_FILE"
