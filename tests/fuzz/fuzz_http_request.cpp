// Fuzz target: the bytes of one HTTP request on a fresh connection. Parsed
// by Beast's parser as the HTTP session parses them, then handled as the
// session does above the parser: the framing checks (web/framing), the head
// checks and the upgrade admission (router), and the request itself through
// the router against a real runtime (a temporary data directory, one view;
// appends are real). Fails on a crash, a sanitizer finding, or a reply that
// breaks protocol.md's rules for error bodies and JSON.
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <nlohmann/json.hpp>

#include <derive/runtime.hpp>
#include <derive/view.hpp>
#include <derive/web/server.hpp>

#include "web/framing.hpp"
#include "web/metrics.hpp"
#include "web/router.hpp"

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using nlohmann::json;
using namespace derive;
using namespace derive::web;

void require(bool ok) {
  if (!ok) std::abort();
}

// Functions the router posts "to the session's strand": run by the fuzzing
// thread, one at a time, as a strand would.
class strand_queue {
 public:
  void post(std::function<void()> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    fns_.push_back(std::move(fn));
    cv_.notify_one();
  }
  // Runs posted functions until `done()` or `timeout`.
  template <class Pred>
  void run_until(Pred done, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lock(mu_);
    while (!done()) {
      if (fns_.empty() && !cv_.wait_until(lock, deadline, [&] { return !fns_.empty(); })) return;
      auto fn = std::move(fns_.front());
      fns_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> fns_;
};

struct world {
  std::string dir;
  std::unique_ptr<runtime> rt;
  metrics stats;
  server_options options;
  std::shared_ptr<const authorizer> auth;  // null: authentication off
  std::unique_ptr<router> routes;
  strand_queue strand;
};

world* the_world = nullptr;

view_def docs_view() {
  return view_def("docs")
      .from_log()
      .apply([](const event& e, view_txn& tx) {
        if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
        else if (e.type == "doc.delete") tx.erase(e.key);
      })
      .query("count", [](const view_snapshot& snap, const query_params& p) -> result<json> {
        auto prefix = p.count("prefix") ? p.at("prefix") : "";
        auto page = snap.range(prefix, "", 1000);
        if (!page) return page.error();
        return json{{"count", page->items.size()}};
      });
}

// protocol.md: every error has {"error":{"code","message"}}; JSON bodies are JSON.
void check_reply(const http_reply& r) {
  require(r.status >= 100 && r.status <= 599);
  if (!r.file.empty()) return;
  if (r.content_type == "application/json") {
    auto body = json::parse(r.body, nullptr, false);
    require(!body.is_discarded());
    if (r.status >= 400) {
      require(body.contains("error") && body["error"]["code"].is_string() &&
              !body["error"]["code"].get<std::string>().empty() &&
              body["error"]["message"].is_string());
    }
  }
}

void handle(http::request_parser<http::string_body>& parser) {
  auto& w = *the_world;
  auto& req = parser.get();
  http_request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  if (auto it = req.find(http::field::content_type); it != req.end())
    r.content_type = std::string(it->value());
  if (auto it = req.find("Idempotency-Key"); it != req.end())
    r.idempotency_key = std::string(it->value());
  if (auto it = req.find(http::field::authorization); it != req.end())
    r.authorization = std::string(it->value());
  r.body = std::move(req.body());
  auto answered = std::make_shared<bool>(false);
  w.routes->handle(
      std::move(r),
      [answered](http_reply reply) {
        require(!*answered);  // exactly once
        *answered = true;
        check_reply(reply);
      },
      [&w](std::function<void()> fn) { w.strand.post(std::move(fn)); });
  // Appends take a commit; a read with after= may wait for seconds, and its
  // reply is then checked while a later input runs.
  w.strand.run_until([&] { return *answered; }, std::chrono::milliseconds(20));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  auto* w = new world;
  char templ[] = "/tmp/derive-fuzz-XXXXXX";
  w->dir = ::mkdtemp(templ);
  runtime_options o;
  o.data_dir = w->dir + "/data";
  o.storage.mode = durability::relaxed;
  o.storage.map_size = uint64_t{1} << 30;
  w->rt = std::make_unique<runtime>(o);
  w->rt->add_view(docs_view());
  require(w->rt->start().is_ok());
  w->options.max_header_bytes = 8 * 1024;
  w->options.max_body_bytes = 64 * 1024;
  w->routes = std::make_unique<router>(*w->rt, w->options, w->stats, w->auth);
  the_world = w;
  std::atexit([] {
    std::error_code ec;
    std::filesystem::remove_all(the_world->dir, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& w = *the_world;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(w.options.max_header_bytes));
  parser.body_limit(w.options.max_body_bytes);
  beast::error_code ec;
  size_t used = parser.put(net::buffer(in.data(), in.size()), ec);
  if (ec == http::error::need_more) return 0;  // the session would wait for more
  if (ec) {
    (void)raw_idempotency_key_is_malformed(in);
    return 0;
  }
  std::string_view raw_header = in.substr(0, used);
  auto& req = parser.get();
  if (auto bad = framing_problem(raw_header, req.version())) {
    require(!bad->empty());
    return 0;
  }
  request_head head;
  head.method = std::string_view(req.method_string().data(), req.method_string().size());
  head.target = std::string_view(req.target().data(), req.target().size());
  head.chunked = parser.chunked();
  if (auto n = parser.content_length()) head.content_length = *n;
  if (auto it = req.find(http::field::host); it != req.end())
    head.host = std::string_view(it->value().data(), it->value().size());
  if (auto it = req.find(http::field::origin); it != req.end())
    head.origin = std::string_view(it->value().data(), it->value().size());
  if (auto bad = w.routes->check_head(head)) return check_reply(*bad), 0;
  if (beast::websocket::is_upgrade(req)) {
    std::optional<std::string_view> origin;
    if (auto it = req.find(http::field::origin); it != req.end())
      origin = std::string_view(it->value().data(), it->value().size());
    auto host = req[http::field::host];
    if (auto refused = w.routes->check_upgrade(head.target, origin,
                                               std::string_view(host.data(), host.size())))
      return check_reply(*refused), 0;
    std::optional<std::string_view> authorization, protocols;
    if (auto it = req.find(http::field::authorization); it != req.end())
      authorization = std::string_view(it->value().data(), it->value().size());
    if (auto it = req.find(http::field::sec_websocket_protocol); it != req.end())
      protocols = std::string_view(it->value().data(), it->value().size());
    auto id = w.routes->authenticate_upgrade(authorization, protocols);
    if (auto* refused = std::get_if<http_reply>(&id)) check_reply(*refused);
    return 0;
  }
  // The body, as far as it was sent.
  in.remove_prefix(used);
  while (!parser.is_done() && !in.empty()) {
    used = parser.put(net::buffer(in.data(), in.size()), ec);
    if (ec) return 0;  // need_more: the session would wait; else it closes
    in.remove_prefix(used);
  }
  if (!parser.is_done()) return 0;
  handle(parser);
  return 0;
}
