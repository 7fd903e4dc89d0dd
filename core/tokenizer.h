/* tokenizer.h - the model's own tokenizer, read from the GGUF vocabulary.
 *
 * The core tokenizes the profile's prompt once and hands the same token ids to
 * every backend, and turns generated ids back into text for the report. The
 * ids must be the ones llama.cpp would produce for the same GGUF file.
 *
 * Metadata read (all under "tokenizer.ggml."):
 *
 *   model            "llama": SentencePiece-style BPE (merge by score)
 *                    "gpt2":  byte-level BPE (merge by rank)
 *                    anything else is refused with its name
 *   tokens           string[n_vocab]; the index is the token id
 *   scores           f32[>= n_vocab] (or i32), optional: merge priority ("llama")
 *   token_type       i32[>= n_vocab], optional: 1 normal, 2 unknown, 3 control,
 *                    4 user-defined, 5 unused, 6 byte (missing: all normal)
 *   merges           string[] "left right", required for "gpt2": rank = index
 *   pre              pre-tokenizer of "gpt2" vocabularies: "llama-bpe" (also
 *                    "llama3", "llama-v3"), "smollm", "gpt-2", "default";
 *                    absent means "default" (as in llama.cpp); any other name
 *                    is refused with its name
 *   bos_token_id, eos_token_id   u32, optional; must lie inside the vocabulary
 *                    (defaults as llama.cpp: 1 and 2 for "llama", 11 and 11
 *                    for "gpt2", each dropped when outside the vocabulary)
 *   add_bos_token, add_eos_token bool, optional (defaults: BOS for "llama" and
 *                    "llama-bpe", no EOS)
 *   add_space_prefix bool, optional, "llama" only (default true)
 *
 * The algorithms (the same as llama.cpp's llama-vocab.cpp for these files):
 *
 *   1. Special tokens. Control and unknown tokens are matched in the text as
 *      whole tokens only when parse_special is asked for; user-defined tokens
 *      always are (as llama.cpp and HF tokenizers do). Longer texts first
 *      (ties: lower id first); each match splits the text into fragments.
 *   2. "llama": each text fragment gets a leading space when it starts the
 *      text or follows a special token (add_space_prefix), every ' ' becomes
 *      U+2581 "▁", and the fragment is split into UTF-8 characters that are
 *      merged pairwise, highest score first (ties: leftmost first), as long as
 *      the merged string is a token. A character that is no token is emitted
 *      as its bytes' <0xNN> tokens (byte fallback).
 *   3. "gpt2": each fragment is split into words by the pre-tokenizer's
 *      regular expressions (PCRE2, UTF-8 with Unicode properties, applied in
 *      sequence: each splits the pieces the previous one left). Each word's
 *      bytes are merged pairwise by merge rank (ties: leftmost first); the
 *      vocabulary spells bytes with GPT-2's byte-to-unicode map. "llama-bpe"
 *      first looks the whole word up (ignore_merges). A byte whose character
 *      the vocabulary lacks is dropped, as llama.cpp and HF tokenizers do
 *      (SmolLM2 lacks 21 byte values, e.g. the control bytes 0x04 and 0x1D).
 *
 * Bad vocabularies: token ids in metadata outside the vocabulary, arrays that
 * are shorter than the vocabulary or of the wrong type are refused at load
 * with one sentence naming the file and key. Defined behaviour for the rest:
 * an empty or invalid-UTF-8 token text can never be produced by tokenization
 * and decodes to its bytes; a duplicated token text maps to the lowest id; a
 * merge without a space is ignored (as llama.cpp does). No input can make the
 * tokenizer read outside what it allocated.
 *
 * Thread safety: after fb_tokenizer_load returns, a tokenizer is read-only;
 * any number of threads may call the functions below on it at once.
 */
#ifndef FB_TOKENIZER_H
#define FB_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fb_error.h"
#include "gguf.h"

typedef struct fb_tokenizer fb_tokenizer;

/* The GGUF token types (tokenizer.ggml.token_type). */
enum fb_token_type {
    FB_TOKEN_UNDEFINED = 0,
    FB_TOKEN_NORMAL = 1,
    FB_TOKEN_UNKNOWN = 2,
    FB_TOKEN_CONTROL = 3,
    FB_TOKEN_USER_DEFINED = 4,
    FB_TOKEN_UNUSED = 5,
    FB_TOKEN_BYTE = 6,
};

/* Build the tokenizer of the GGUF file `f`. Everything it needs is copied:
 * `f` may be closed afterwards. On success *out is owned by the caller (free
 * with fb_tokenizer_free); on failure *out is NULL and err names the file, the
 * key and the cause (unsupported model or pre-tokenizer, missing or malformed
 * array, id outside the vocabulary, out of memory). */
int fb_tokenizer_load(const gguf_file *f, fb_tokenizer **out, fb_error *err);

void fb_tokenizer_free(fb_tokenizer *t); /* NULL is allowed */

/* Tokenize `len` bytes of UTF-8 `text` (NULs allowed; need not be terminated).
 * add_special: prepend BOS / append EOS as the metadata says.
 * parse_special: match control-token texts (e.g. "<|im_start|>") as whole
 * tokens; without it they are tokenized as ordinary text.
 * On success *ids is malloc'd (the caller frees it; it may be NULL when
 * *n_ids is 0). Fails, with *ids NULL, when the text is not valid UTF-8 (the
 * message gives the byte offset), when a "llama" vocabulary has no byte token
 * for a character it cannot spell otherwise (llama.cpp throws there), or when
 * memory runs out. Time is O(n log n) in the text length. */
int fb_tokenize(const fb_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                int32_t **ids, size_t *n_ids, fb_error *err);

/* Turn ids back into bytes: the exact inverse of fb_tokenize for any valid
 * UTF-8 text that the vocabulary can spell (for "llama" vocabularies, text
 * without U+2581, which the vocabulary itself cannot tell from a space; for
 * "gpt2" ones, text without bytes that tokenizing drops). render_special: write control
 * and unknown tokens' texts (e.g. "<|im_end|>"); without it they write
 * nothing. No clean-up of spaces is done. The leading space that
 * add_space_prefix put before a fragment is removed. On success *text is
 * malloc'd, NUL-terminated (not counted in *len) and owned by the caller; it
 * may hold invalid UTF-8 when the ids split a character (e.g. byte tokens).
 * Fails on an id outside the vocabulary (named in the message). */
int fb_detokenize(const fb_tokenizer *t, const int32_t *ids, size_t n, bool render_special, char **text, size_t *len,
                  fb_error *err);

uint32_t fb_tokenizer_n_vocab(const fb_tokenizer *t);
int32_t fb_tokenizer_bos(const fb_tokenizer *t);       /* -1 when there is none */
int32_t fb_tokenizer_eos(const fb_tokenizer *t);       /* -1 when there is none */
const char *fb_tokenizer_model(const fb_tokenizer *t); /* "llama" or "gpt2" */
const char *fb_tokenizer_pre(const fb_tokenizer *t);   /* "llama-bpe", ...; "" for "llama" */

/* The raw vocabulary string of `id` (NUL-terminated; *len, when not NULL,
 * gets its length, since it may hold NULs), or NULL when id is out of range.
 * Valid as long as the tokenizer. */
const char *fb_token_text(const fb_tokenizer *t, int32_t id, size_t *len);

/* The bytes `id` stands for in text (byte-level map undone, "▁" as space,
 * <0xNN> as its byte; control tokens as their text), NUL-terminated, length in
 * *len; NULL when id is out of range. Valid as long as the tokenizer. */
const char *fb_token_piece(const fb_tokenizer *t, int32_t id, size_t *len);

/* enum fb_token_type of `id`, or -1 when out of range (other values in the
 * file are passed through). */
int32_t fb_token_type(const fb_tokenizer *t, int32_t id);

#endif
