# embed_text.cmake - turn a text file into a C array, at build time:
#   cmake -DIN=plugins/jit_fused/jit_fused_kernels.cuh -DOUT=jf_template.c -DNAME=jf_kernel_template -P embed_text.cmake
# The array is NUL-terminated, so it reads as a C string; nothing is read
# from the source tree at run time.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# 16 bytes per line (CMake's regular expressions have no {n})
string(REPEAT "0x[0-9a-f][0-9a-f]," 16 sixteen)
string(REGEX REPLACE "(${sixteen})" "\\1\n  " bytes "${bytes}")
file(WRITE "${OUT}.tmp"
  "/* generated from ${IN} by cmake/embed_text.cmake; do not edit */\n"
  "const char ${NAME}[] = {\n  ${bytes}0x00\n};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
