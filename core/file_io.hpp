#pragma once
// Whole reads and writes at a file offset, retried on EINTR and short counts
// (the journal, the meta pages of data.mdb). Internal to core.

#include <cstddef>
#include <cstdint>

namespace derive {

// Reads exactly n bytes at `at`; false on an error (errno) or the file's end.
bool read_exact(int fd, char* p, size_t n, uint64_t at);
// Writes exactly n bytes at `at`; false on an error (errno).
bool write_exact(int fd, const char* p, size_t n, uint64_t at);

}  // namespace derive
