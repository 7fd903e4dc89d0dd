/* cmd_tokenize.h - `fairbench tokenize`: the model's tokenizer on the command line. */
#ifndef FB_CMD_TOKENIZE_H
#define FB_CMD_TOKENIZE_H

/* argv[0] is "tokenize". Prints to stdout, errors to stderr; returns the exit
 * status: 0 ok, 2 bad input or usage. */
int fb_cmd_tokenize(int argc, char **argv);

#endif
