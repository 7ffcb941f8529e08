#!/usr/bin/env bash
# Writes the seed corpus of the safetensors fuzzer (tests/fuzz/corpus/): a few small valid files
# covering every dtype, metadata, an empty tensor and a gap. Uses only bash and printf.
set -euo pipefail
out="${1:-$(dirname "$0")/../tests/fuzz/corpus}"
mkdir -p "$out"

# write FILE HEADER DATA_PRINTF_FORMAT: 8-byte little-endian header length, header, data bytes.
write() {
  local file="$1" header="$2" data="$3" n i le=""
  n=${#header}
  for ((i = 0; i < 8; i++)); do
    le+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255)))
  done
  { printf "$le"; printf '%s' "$header"; printf "$data"; } >"$out/$file"
}

write tiny_f32.safetensors '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' \
  '\x00\x00\x80\x3f\x00\x00\x00\xc0'
write all_dtypes.safetensors \
  '{"__metadata__":{"config":"{\"hidden\":4}","format":"pt"},"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]},"c":{"dtype":"I32","shape":[],"data_offsets":[16,20]},"e":{"dtype":"F32","shape":[0,3],"data_offsets":[20,20]}}    ' \
  '\x00\x00\x00\x00\x00\x00\xf0\x3f\xfd\xff\xff\xff\xff\xff\xff\xff\x07\x00\x00\x00'
write gap.safetensors '{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' \
  '\xff\xff\xff\xff\x00\x00\x40\x40'
write empty.safetensors '{}' ''
