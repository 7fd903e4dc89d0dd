#!/usr/bin/env bash
# cpu_ref against the independent numpy reference, for every golden file in
# tests/data/ref/manifest.tsv. Synthetic models are regenerated with the
# recorded `fairbench synth` command and must hash to the recorded SHA-256
# (else synth changed and the goldens must be remade); the SmolLM2 entries
# use the downloaded default model and are skipped when it is absent.
set -u
fairbench=$1 checker=$2 dir=$3 tmp=$4/golden
mkdir -p "$tmp"
pass=0 fail=0 skip=0
while IFS=$'\t' read -r file model sha description; do
  [[ $file == \#* || -z $file ]] && continue
  if [[ $model == "fairbench synth "* ]]; then
    read -r -a words <<<"${model#fairbench synth }"
    args=()
    for ((i = 0; i < ${#words[@]}; i++)); do  # drop the recorded -o NAME
      if [[ ${words[i]} == -o ]]; then i=$((i + 1)); else args+=("${words[i]}"); fi
    done
    path=$tmp/${file%.fbrl}.gguf
    if ! "$fairbench" synth "${args[@]}" -o "$path" 2>/dev/null; then
      echo "FAIL $file: cannot regenerate the model: $model"; fail=$((fail + 1)); continue
    fi
  else
    path=$("$(dirname "$0")/../scripts/fetch-model.sh" --path)
    if [[ ! -f $path ]]; then echo "skip $file: $path absent"; skip=$((skip + 1)); continue; fi
  fi
  if [[ $(sha256sum "$path" | cut -d' ' -f1) != "$sha" ]]; then
    echo "FAIL $file: $path does not hash to the recorded $sha"; fail=$((fail + 1)); continue
  fi
  echo "== $file ($description)"
  if "$checker" "$dir/$file" "$path"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done < "$dir/manifest.tsv"
rm -rf "$tmp"
echo "$pass passed, $fail failed, $skip skipped"
(( fail == 0 && pass > 0 ))
