#!/usr/bin/env bash
# `fairbench tokenize` end to end on a committed vocabulary: ids and pieces,
# --ids, --file (and stdin), --decode round trips, --parse-special, and the
# errors (exit 2 with one sentence on stderr).
set -u
fairbench=$1
tmp=$2
data=$(cd "$(dirname "$0")/data/tokenizer" && pwd)
vocab=$data/bpe-llama3.gguf
spm=$data/spm.gguf
mkdir -p "$tmp"
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

# expect_exit STATUS NAME CMD...: the exit status must be STATUS
expect_exit() {
  local want=$1 name=$2; shift 2
  "$@" >"$tmp/cli.out" 2>"$tmp/cli.err"
  local got=$?
  if [[ $got == "$want" ]]; then ok "$name (exit $got)"; else bad "$name: exit $got, want $want; stderr: $(cat "$tmp/cli.err")"; fi
}
expect_err() { # the last command's stderr must match
  if grep -qE "$1" "$tmp/cli.err"; then ok "  stderr matches '$1'"; else bad "  stderr '$(cat "$tmp/cli.err")' does not match '$1'"; fi
}

expect_exit 0 "ids and pieces" "$fairbench" tokenize "$vocab" "Hello world, it's 2024!"
if grep -qvE "^ *[0-9]+  '.*'( +\([a-z-]+\))?$" "$tmp/cli.out"; then bad "  malformed line: $(grep -vE "^ *[0-9]+  '" "$tmp/cli.out" | head -1)"; else ok "  every line is: id  'piece'"; fi
if grep -qE "^ *[0-9]+  '<\|begin_of_text\|>'  \(control\)$" "$tmp/cli.out"; then ok "  BOS first (add_bos_token)"; else bad "  no BOS line"; fi

# --ids then --decode gives the text back, byte for byte
text=$'  Tabs\tand\nnewlines, caf\u00e9, \u4f60\u597d, \U0001F642 and 12345 '
printf '%s' "$text" >"$tmp/cli_text.txt"
for v in "$vocab" "$spm"; do
  name=$(basename "$v")
  ids=$("$fairbench" tokenize "$v" --no-bos-eos --ids --file "$tmp/cli_text.txt") || bad "$name: --ids --file failed"
  [[ $ids =~ ^[0-9]+(,[0-9]+)*$ ]] && ok "$name: --ids prints comma-separated ids" || bad "$name: --ids printed '$ids'"
  "$fairbench" tokenize "$v" --decode "$ids" >"$tmp/cli_back.txt" || bad "$name: --decode failed"
  cmp -s "$tmp/cli_text.txt" "$tmp/cli_back.txt" && ok "$name: --decode gives the text back" || bad "$name: --decode differs"
  ids_stdin=$("$fairbench" tokenize "$v" --no-bos-eos --ids --file - <"$tmp/cli_text.txt")
  [[ $ids_stdin == "$ids" ]] && ok "$name: --file - reads standard input" || bad "$name: stdin gave '$ids_stdin'"
  ids_arg=$("$fairbench" tokenize "$v" --no-bos-eos --ids "$text")
  [[ $ids_arg == "$ids" ]] && ok "$name: TEXT argument equals --file" || bad "$name: TEXT gave '$ids_arg'"
done

# special tokens only with --parse-special
eot=$("$fairbench" tokenize "$vocab" --no-bos-eos --ids --parse-special "<|eot_id|>")
[[ $eot =~ ^[0-9]+$ ]] && ok "--parse-special: <|eot_id|> is one token ($eot)" || bad "--parse-special gave '$eot'"
plain=$("$fairbench" tokenize "$vocab" --no-bos-eos --ids "<|eot_id|>")
[[ $plain == *,* ]] && ok "without it: several tokens ($plain)" || bad "without --parse-special gave '$plain'"
shown=$("$fairbench" tokenize "$vocab" --decode "$eot")
[[ $shown == "<|eot_id|>" ]] && ok "--decode shows control tokens" || bad "--decode showed '$shown'"
hidden=$("$fairbench" tokenize "$vocab" --decode "$eot" --skip-special)
[[ -z $hidden ]] && ok "--skip-special leaves them out" || bad "--skip-special showed '$hidden'"
expect_exit 0 "empty text" "$fairbench" tokenize "$vocab" --no-bos-eos --ids ""
[[ $(cat "$tmp/cli.out") == "" ]] && ok "  no ids" || bad "  printed '$(cat "$tmp/cli.out")'"
expect_exit 0 "a text the vocabulary cannot spell" "$fairbench" tokenize "$spm" $'a\u2581b'
expect_err "note: these ids decode to 3 bytes that differ from the 5 bytes"
expect_exit 0 "text after --" "$fairbench" tokenize "$vocab" --ids -- "-5"

# errors
expect_exit 2 "no arguments" "$fairbench" tokenize
expect_exit 2 "no text" "$fairbench" tokenize "$vocab"
expect_exit 2 "unknown option" "$fairbench" tokenize "$vocab" --frobnicate x
expect_exit 2 "--decode and --file" "$fairbench" tokenize "$vocab" --decode 1 --file "$tmp/cli_text.txt"
expect_exit 2 "missing model" "$fairbench" tokenize "$tmp/no_such_model.gguf" "hi"
expect_err "no_such_model.gguf"
printf 'not a gguf' >"$tmp/cli_not.gguf"
expect_exit 2 "not a GGUF file" "$fairbench" tokenize "$tmp/cli_not.gguf" "hi"
expect_err "cli_not.gguf"
printf 'ok \xff\xfe bad' >"$tmp/cli_bad_utf8.txt"
expect_exit 2 "invalid UTF-8 input" "$fairbench" tokenize "$vocab" --file "$tmp/cli_bad_utf8.txt"
expect_err "not valid UTF-8 \(byte 3"
expect_exit 2 "missing input file" "$fairbench" tokenize "$vocab" --file "$tmp/no_such_text.txt"
expect_err "no_such_text.txt"
expect_exit 2 "id outside the vocabulary" "$fairbench" tokenize "$vocab" --decode 1,99999999
expect_err "token id 99999999"
expect_exit 2 "negative id" "$fairbench" tokenize "$vocab" --decode -3
expect_err "token id -3"
expect_exit 2 "malformed id list" "$fairbench" tokenize "$vocab" --decode 1,x
expect_err "comma-separated"
expect_exit 0 "help" "$fairbench" help
grep -q "^  tokenize " "$tmp/cli.out" && ok "  help lists tokenize" || bad "  help does not list tokenize"
expect_exit 0 "tokenize --help" "$fairbench" tokenize --help
grep -q "usage: fairbench tokenize MODEL.gguf" "$tmp/cli.out" && ok "  its own usage" || bad "  tokenize --help is not its usage"

exit $fail
