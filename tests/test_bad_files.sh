#!/usr/bin/env bash
# Every crafted bad file (tests/data/bad, made by make_bad.py) must make
# `fairbench inspect` exit with status 2 and print one error that names the
# file, the field and the byte offset listed in expected.tsv.
set -u
fairbench=$1 dir=$2
pass=0 fail=0
while IFS=$'\t' read -r file field offset; do
  [[ $file == \#* || -z $file ]] && continue
  msg=$("$fairbench" inspect "$dir/$file" 2>&1 >/dev/null)
  rc=$?
  problems=()
  (( rc == 2 )) || problems+=("exit status $rc, expected 2")
  [[ $msg == *"$dir/$file"* ]] || problems+=("message does not name the file")
  [[ $msg == *"$field"* ]] || problems+=("message does not name '$field'")
  if [[ -n $offset ]]; then
    [[ $msg == *"at byte $offset:"* ]] || problems+=("message does not give byte offset $offset")
  fi
  if (( ${#problems[@]} )); then
    fail=$((fail + 1))
    printf 'FAIL %s: %s\n     message: %s\n' "$file" "$(IFS=';'; echo "${problems[*]}")" "$msg"
  else
    pass=$((pass + 1))
    printf 'ok   %s: %s\n' "$file" "$msg"
  fi
done < "$dir/expected.tsv"
echo "$pass passed, $fail failed"
(( pass > 0 && fail == 0 ))
