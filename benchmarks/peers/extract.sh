#!/bin/sh
# Extract a peer repository's HEAD from a git directory into $TFEMERGENT_PEERS_DIR/<name>
# (default /tmp/peers/<name>) and write its commit to COMMIT (read by _common.git_commit).
#
#   sh benchmarks/peers/extract.sh <git-dir> <name>
#   e.g. sh benchmarks/peers/extract.sh /work/.mirror/THANNAGA+Reset-Networks/repo Reset-Networks
#
# File by file rather than `git archive`, which stops at the first absent blob: the
# stored snapshots lack some large files (the Reset checkpoints *.t7, an .eps figure),
# none of which the comparisons use. Absent files are listed on stderr.
set -eu
gitdir=$1
name=$2
target=${TFEMERGENT_PEERS_DIR:-/tmp/peers}/$name
mkdir -p "$target"
git --git-dir="$gitdir" rev-parse HEAD > "$target/COMMIT"
git --git-dir="$gitdir" ls-tree -r HEAD | while IFS="$(printf '\t')" read -r meta path; do
    object=$(echo "$meta" | cut -d' ' -f3)
    if git --git-dir="$gitdir" cat-file -e "$object" 2>/dev/null; then
        mkdir -p "$target/$(dirname "$path")"
        git --git-dir="$gitdir" cat-file blob "$object" > "$target/$path"
    else
        echo "absent from the snapshot: $path" >&2
    fi
done
echo "$name $(cat "$target/COMMIT") -> $target"
