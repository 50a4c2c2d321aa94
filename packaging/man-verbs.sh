#!/usr/bin/env bash
# Write a help2man include file with every verb's --help, so forkd(1)
# documents each verb's options (make install's man page).
#   packaging/man-verbs.sh FORKD > forkd.h2m
set -euo pipefail
forkd=$1
echo "[COMMAND OPTIONS]"
"$forkd" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' | while read -r verb; do
	echo ".SS forkd $verb"
	echo ".nf"
	# Escape roff: backslashes, and a leading dot or quote on a line.
	"$forkd" "$verb" --help 2>&1 | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
	echo ".fi"
done
