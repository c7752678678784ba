#pragma once
// `docsearch import DIR`: loads a folder of text files into a running
// docsearch server as documents, over HTTP, through the normal append path
// (POST /v1/events: validators, idempotency, durability).
//
// Every regular file under DIR (recursively; names starting with '.' are
// skipped, files and folders alike) becomes one doc.put:
//   key   its path relative to DIR, with '/' separators ("notes/todo.md")
//   title its first non-blank line (leading '#' and spaces of a Markdown
//         heading removed, at most 200 bytes), or the file name without
//         extension when the file has no such line
//   text  the rest of the file after that line (the whole file when the title
//         is the file name)
// Files that are not valid UTF-8 (or hold a NUL byte: binary), whose event
// would not fit in one request body (max_body_bytes, default 1 MiB, as the
// server's default limit), whose path is not valid UTF-8 or longer than an
// event key may be (1024 bytes), or that cannot be read, are skipped with a
// message on stderr and counted in the report.
//
// Documents go `batch_size` per request (and fewer when the body would pass
// max_body_bytes), in path order, each request with the Idempotency-Key
// "docsearch-import-<hash of the batch's paths and contents>": running the
// same import again appends nothing (the server answers each batch as a
// replay), and a retry after a lost connection cannot duplicate a batch.
// The report's time to searchable is measured until the `search` view has
// applied the last appended offset (GET /v1/views/search?after=<offset>).

#include <cstdint>
#include <iosfwd>
#include <string>

namespace docsearch {

struct import_options {
  std::string dir;
  std::string url = "http://127.0.0.1:8080";
  size_t batch_size = 50;                 // documents per request, 1..1000
  size_t max_body_bytes = 1024 * 1024;    // the server's request body limit
  bool progress = true;                   // a progress bar on stderr (when a terminal)
  // A server in auth mode: the JWT sent as Authorization: Bearer, and the
  // prefix put before every document id (e.g. "users/alice/": the rules of
  // auth mode let a user write only there).
  std::string token;
  std::string prefix;
  // The events' subject (README.md, "Events"): the documents' author, whom
  // POST /v1/subjects/{subject}/forget forgets; empty: none.
  std::string subject;
};

struct import_report {
  uint64_t files = 0;            // regular files found (not counting hidden ones)
  uint64_t documents = 0;        // documents sent
  uint64_t bytes = 0;            // bytes of the files sent
  uint64_t requests = 0;         // append requests
  uint64_t replayed = 0;         // documents in requests the server answered as replays
  uint64_t skipped_not_utf8 = 0; // not valid UTF-8 text (or binary)
  uint64_t skipped_too_large = 0;
  uint64_t skipped_other = 0;    // unreadable, or a path unusable as a key
  uint64_t last_offset = 0;      // the last appended offset (0: none)
  double append_seconds = 0;     // until the last append was acknowledged
  double searchable_seconds = 0; // until the search view had applied last_offset
  bool ok = false;               // false: stopped by an error (message in `error`)
  std::string error;
};

// Runs the import; messages about skipped files and the progress bar go to
// `err`. Never throws for I/O or network errors (see report.ok).
import_report import_directory(const import_options& options, std::ostream& err);

// The human-readable final report.
void print_report(const import_report& report, std::ostream& out);

// `docsearch import ...` (argv after "import"): parses flags, runs, prints the
// report on stdout. Returns the process exit code.
int import_main(int argc, char** argv);

}  // namespace docsearch
