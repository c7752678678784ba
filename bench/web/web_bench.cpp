// web_bench: the load driver of the web benchmark (bench/web/run.sh).
//
//   web_bench http   --port P --mode append|read [--connections 50] [--seconds 10]
//                    [--warmup 1] [--keys 1000] [--server-pid PID]
//   web_bench fanout --port P --kind derive|ws --subscribers N [--rate R]
//                    [--seconds 4] [--warmup 1] [--window 128] [--server-pid PID]
//                    [--prefix P] [--drain 3] [--producer http|ws]
//   web_bench idle   --port P --kind derive|ws --subscribers N [--server-pid PID]
//                    [--subscribe 0|1]
//
// http: N keep-alive connections, each sending one request at a time: POST
// /v1/events with one ~100-byte event (mode append) or GET
// /v1/views/latest/key-NNNNNN (mode read). Requests completed per second in
// the measurement window, latency p50/p99.
//
// fanout: N WebSocket subscribers (one connection each) to every key with
// `prefix`, then a producer that appends events with keys <prefix><n>: at
// `rate` per second, or (rate 0) as fast as `window` appends in flight allow.
// kind derive: Derive's protocol (subscribe with prefix); the producer POSTs
// each event to /v1/events over `window` keep-alive connections (acknowledged
// by 201 once durable), or with --producer ws sends the WebSocket "append" op
// on one connection (acknowledged by "appended"). kind ws: the Node
// broadcast server (bench/web/ws_server.js): subscribers connect to /sub, the
// producer to /producer and sends each item as the exact bytes a Derive
// "changes" message with that one item has; the server sends them to every
// subscriber, then "ok" to the producer (acknowledgements in order).
// The subscribers run on the main thread, the producer on a thread of its own
// (so that its send and acknowledgement times are taken when they happen).
// Measured on this process's one clock (steady_clock):
//   - items/s: change items received by all subscribers in the window (the
//     latencies below are over the same items);
//   - latency send -> receipt: from queueing the append on the producer's
//     socket to the subscriber handling the message with the item;
//   - latency ack -> receipt: from the producer handling the acknowledgement
//     to the receipt (0 when the item arrived first; counted in before_ack);
//   - the server's VmRSS (before connecting, subscribed, peak) and CPU time.
// idle: connects and subscribes N subscribers (--subscribe 0: connects and
// upgrades only), waits 2 s, reports the server's memory.
//
// Prints one line "RESULT key=value ..." per run.

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr int64_t ns_per_s = 1'000'000'000;

// Latencies in microseconds: exact below 1024 us, then 64 buckets per power
// of two (under 1.6 % error).
class histogram {
 public:
  histogram() : counts_(1024 + 64 * 44, 0) {}

  void add(int64_t us) {
    if (us < 0) us = 0;
    ++counts_[index(static_cast<uint64_t>(us))];
    ++total_;
  }
  uint64_t count() const { return total_; }

  // The p-quantile (0..1) in milliseconds; -1 when empty.
  double quantile_ms(double p) const {
    if (total_ == 0) return -1;
    auto rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(total_)));
    rank = std::max<uint64_t>(rank, 1);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return static_cast<double>(value(i)) / 1000.0;
    }
    return -1;
  }

 private:
  static size_t index(uint64_t v) {
    if (v < 1024) return v;
    int e = 63 - __builtin_clzll(v);  // >= 10
    size_t sub = (v >> (e - 6)) & 63;
    size_t i = 1024 + static_cast<size_t>(e - 10) * 64 + sub;
    return std::min(i, static_cast<size_t>(1024 + 64 * 44 - 1));
  }
  static uint64_t value(size_t i) {
    if (i < 1024) return i;
    size_t e = (i - 1024) / 64 + 10;
    uint64_t sub = (i - 1024) % 64;
    uint64_t lo = (64 + sub) << (e - 6);
    return lo + (uint64_t{1} << (e - 6)) / 2;  // bucket middle
  }

  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

// --- the server process, through /proc ---
long rss_kb(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// User + system CPU seconds of process `pid` (all threads).
double cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(text.substr(close + 2));
  std::string f;
  unsigned long utime = 0, stime = 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14) utime = std::stoul(f);
    if (i == 15) stime = std::stoul(f);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

double mb(long kb) { return kb < 0 ? -1 : static_cast<double>(kb) / 1024.0; }

// Closes with a reset: no TIME_WAIT left behind by thousands of connections.
void abort_socket(tcp::socket& s) {
  beast::error_code ec;
  s.set_option(net::socket_base::linger(true, 0), ec);
  s.close(ec);
}

// --- arguments ---
class args {
 public:
  args(int argc, char** argv) {
    for (int i = 2; i + 1 < argc; i += 2) {
      std::string k = argv[i];
      if (k.rfind("--", 0) == 0) values_[k.substr(2)] = argv[i + 1];
    }
  }
  std::string str(const std::string& k, std::string def = "") const {
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  double num(const std::string& k, double def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : std::atof(it->second.c_str());
  }

 private:
  std::map<std::string, std::string> values_;
};

// ============================== HTTP ==============================

struct http_run {
  tcp::endpoint endpoint;
  bool append = true;
  uint64_t keys = 1000;
  int64_t t0 = 0, t1 = 0;  // the measurement window
  uint64_t next = 0;       // request counter (keys rotate through it)
  uint64_t done = 0;       // completed in the window
  uint64_t errors = 0;
  uint64_t bad_status = 0;
  unsigned first_bad = 0;
  histogram latency;
  int server_pid = 0;               // > 0: the server's CPU is read at t0 and t1
  double server_cpu[2] = {-1, -1};  // its user + system seconds then
  double own_cpu[2] = {0, 0};       // the driver's
};

std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "key-%06llu", static_cast<unsigned long long>(i));
  return buf;
}

// ~100 bytes: {"type":"bench.put","key":"key-000123","data":{"n":123,"text":"..."}}
std::string append_body(uint64_t n, uint64_t keys) {
  std::string body = "{\"type\":\"bench.put\",\"key\":\"" + key_of(n % keys) +
                     "\",\"data\":{\"n\":" + std::to_string(n) + ",\"text\":\"";
  body.append(100 > body.size() + 4 ? 100 - body.size() - 4 : 8, 'x');
  body += "\"}}";
  return body;
}

class http_client : public std::enable_shared_from_this<http_client> {
 public:
  http_client(net::io_context& ioc, http_run& run) : socket_(ioc), run_(run) {}

  void start() {
    socket_.async_connect(run_.endpoint, [self = shared_from_this()](beast::error_code ec) {
      if (ec) {
        ++self->run_.errors;
        return;
      }
      self->socket_.set_option(tcp::no_delay(true));
      self->send();
    });
  }

 private:
  void send() {
    if (now_ns() >= run_.t1) return abort_socket(socket_);
    uint64_t n = run_.next++;
    req_ = {};
    req_.version(11);
    req_.set(http::field::host, "127.0.0.1");
    if (run_.append) {
      req_.method(http::verb::post);
      req_.target("/v1/events");
      req_.set(http::field::content_type, "application/json");
      req_.body() = append_body(n, run_.keys);
    } else {
      req_.method(http::verb::get);
      req_.target("/v1/views/latest/" + key_of(n % run_.keys));
    }
    req_.keep_alive(true);
    req_.prepare_payload();
    started_ = now_ns();
    http::async_write(socket_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        ++self->run_.errors;
        return abort_socket(self->socket_);
      }
      self->res_ = {};
      http::async_read(self->socket_, self->buf_, self->res_,
                       [self](beast::error_code ec, size_t) { self->on_read(ec); });
    });
  }

  void on_read(beast::error_code ec) {
    int64_t t = now_ns();
    if (ec) {
      ++run_.errors;
      return abort_socket(socket_);
    }
    unsigned expected = run_.append ? 201 : 200;
    if (res_.result_int() != expected) {
      if (run_.bad_status++ == 0) run_.first_bad = res_.result_int();
    } else if (started_ >= run_.t0 && t <= run_.t1) {
      ++run_.done;
      run_.latency.add((t - started_) / 1000);
    }
    if (!res_.keep_alive()) {
      ++run_.errors;
      return abort_socket(socket_);
    }
    send();
  }

  tcp::socket socket_;
  http_run& run_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  int64_t started_ = 0;
};

int run_http(const args& a) {
  net::io_context ioc(1);
  http_run run;
  run.endpoint = tcp::endpoint(net::ip::make_address("127.0.0.1"),
                               static_cast<uint16_t>(a.num("port", 8080)));
  run.append = a.str("mode", "append") == "append";
  run.keys = static_cast<uint64_t>(a.num("keys", 1000));
  int conns = static_cast<int>(a.num("connections", 50));
  double warmup = a.num("warmup", 1), seconds = a.num("seconds", 10);
  int64_t start = now_ns();
  run.t0 = start + static_cast<int64_t>(warmup * ns_per_s);
  run.t1 = run.t0 + static_cast<int64_t>(seconds * ns_per_s);
  run.server_pid = static_cast<int>(a.num("server-pid", 0));
  for (int i = 0; i < conns; ++i) std::make_shared<http_client>(ioc, run)->start();
  // CPU of the server and of the driver over the measurement window.
  net::steady_timer at_t0(ioc), at_t1(ioc);
  auto sample = [&run](int i) {
    run.server_cpu[i] = cpu_seconds(run.server_pid);
    run.own_cpu[i] = own_cpu_seconds();
  };
  at_t0.expires_after(std::chrono::nanoseconds(run.t0 - now_ns()));
  at_t0.async_wait([&](beast::error_code) { sample(0); });
  at_t1.expires_after(std::chrono::nanoseconds(run.t1 - now_ns()));
  at_t1.async_wait([&](beast::error_code) { sample(1); });
  ioc.run();
  double window = static_cast<double>(run.t1 - run.t0) / ns_per_s;
  // Microseconds of CPU per completed request (-1: no server pid given).
  auto per_request_us = [&run](const double* cpu) {
    if (cpu[0] < 0 || cpu[1] < 0 || run.done == 0) return -1.0;
    return (cpu[1] - cpu[0]) * 1e6 / static_cast<double>(run.done);
  };
  std::printf(
      "RESULT test=http mode=%s connections=%d requests=%llu per_s=%.0f p50_ms=%.3f "
      "p99_ms=%.3f errors=%llu bad_status=%llu first_bad=%u server_cpu_s=%.2f "
      "server_us_per_req=%.1f driver_us_per_req=%.1f\n",
      run.append ? "append" : "read", conns, static_cast<unsigned long long>(run.done),
      static_cast<double>(run.done) / window, run.latency.quantile_ms(0.5),
      run.latency.quantile_ms(0.99), static_cast<unsigned long long>(run.errors),
      static_cast<unsigned long long>(run.bad_status), run.first_bad,
      run.server_cpu[1] - run.server_cpu[0], per_request_us(run.server_cpu),
      per_request_us(run.own_cpu));
  return run.errors == 0 && run.bad_status == 0 ? 0 : 1;
}

// ============================== fan-out ==============================

enum class server_kind { derive, ws };

// Send and acknowledgement times by item number, written by the producer's
// thread and read by the subscribers' thread (0: not yet).
struct item_times {
  explicit item_times(size_t capacity)
      : cap(capacity),
        send(new std::atomic<int64_t>[capacity]()),
        ack(new std::atomic<int64_t>[capacity]()) {}
  size_t cap;
  std::unique_ptr<std::atomic<int64_t>[]> send, ack;
  std::atomic<uint64_t> sent{0};

  // Items sent within [from, to] (send times ascend with n).
  uint64_t sent_between(int64_t from, int64_t to) const {
    uint64_t n = sent.load();
    auto first_at_or_after = [&](int64_t t, bool inclusive) {
      uint64_t lo = 0, hi = n;
      while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        int64_t s = send[mid].load(std::memory_order_relaxed);
        if (inclusive ? s < t : s <= t) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    return first_at_or_after(to, false) - first_at_or_after(from, true);
  }
};

struct fanout_config {
  tcp::endpoint endpoint;
  std::string host;
  server_kind kind = server_kind::derive;
  std::string prefix;
  std::string pad = std::string(60, 'p');
  double rate = 0;  // appends/s; 0: as fast as the window allows
  size_t window = 128;
  double warmup = 1, seconds = 4;
  // kind derive: append with POST /v1/events over `window` keep-alive
  // connections (acknowledged by 201), or with the WebSocket "append" op.
  bool http_producer = true;
};

// The producer: one WebSocket connection on its own thread and io_context, so
// that its send and acknowledgement times are taken when they happen, not when
// the subscribers' thread gets to them.
class producer : public std::enable_shared_from_this<producer> {
 public:
  producer(net::io_context& ioc, const fanout_config& cfg, item_times& times)
      : ws_(ioc), timer_(ioc), cfg_(cfg), times_(times) {}

  // Blocking connects (and handshake); then run() produces from `t_start`.
  bool open() {
    beast::error_code ec;
    if (uses_http()) {
      for (size_t i = 0; i < cfg_.window && !ec; ++i) {
        auto c = std::make_unique<http_lane>(ws_.get_executor());
        c->socket.connect(cfg_.endpoint, ec);
        if (!ec) c->socket.set_option(tcp::no_delay(true), ec);
        idle_.push_back(c.get());
        lanes_.push_back(std::move(c));
      }
    } else {
      beast::get_lowest_layer(ws_).connect(cfg_.endpoint, ec);
      if (!ec) beast::get_lowest_layer(ws_).set_option(tcp::no_delay(true), ec);
      if (!ec) {
        ws_.handshake(cfg_.host, cfg_.kind == server_kind::derive ? "/v1/ws" : "/producer", ec);
      }
      ws_.text(true);
    }
    if (ec) {
      std::fprintf(stderr, "web_bench: producer: %s\n", ec.message().c_str());
      return false;
    }
    return true;
  }

  void run(int64_t t_start, int64_t t_end) {
    t_start_ = t_start;
    t_end_ = t_end;
    if (!uses_http()) do_read();
    if (cfg_.rate == 0) {
      fill_window();
    } else {
      on_tick();
    }
  }

  // On the producer's thread.
  void stop() {
    stopped_ = true;
    timer_.cancel();
    abort_socket(beast::get_lowest_layer(ws_));
    for (auto& c : lanes_) abort_socket(c->socket);
  }

  std::atomic<size_t> inflight{0};
  std::atomic<uint64_t> append_errors{0};
  std::string first_append_error;  // read after the thread ended

 private:
  // One keep-alive HTTP connection with at most one append in flight.
  struct http_lane {
    explicit http_lane(const net::any_io_executor& ex) : socket(ex) {}
    tcp::socket socket;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    uint64_t n = 0;
  };

  bool uses_http() const { return cfg_.kind == server_kind::derive && cfg_.http_producer; }
  bool producing() const { return !stopped_ && now_ns() < t_end_; }

  void fill_window() {
    while (producing() && send_one()) {
    }
  }

  // Fixed rate: every millisecond, sends what is due since t_start.
  void on_tick() {
    if (!producing()) return;
    auto due = static_cast<uint64_t>(static_cast<double>(now_ns() - t_start_) * cfg_.rate /
                                     ns_per_s);
    while (times_.sent.load() < due && producing() && send_one()) {
    }
    timer_.expires_after(std::chrono::milliseconds(1));
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->on_tick();
    });
  }

  bool send_one() {
    uint64_t n = times_.sent.load();
    if (inflight.load() >= cfg_.window || n >= times_.cap) return false;
    if (uses_http() && idle_.empty()) return false;
    std::string num = std::to_string(n);
    std::string key = cfg_.prefix + num;
    std::string value = "{\"n\":" + num + ",\"pad\":\"" + cfg_.pad + "\"}";
    std::string event = "{\"type\":\"bench.put\",\"key\":\"" + key + "\",\"data\":" + value + "}";
    if (uses_http()) {
      http_lane* c = idle_.back();
      idle_.pop_back();
      c->n = n;
      c->req = {};
      c->req.version(11);
      c->req.method(http::verb::post);
      c->req.target("/v1/events");
      c->req.set(http::field::host, cfg_.host);
      c->req.set(http::field::content_type, "application/json");
      c->req.body() = std::move(event);
      c->req.keep_alive(true);
      c->req.prepare_payload();
      times_.send[n].store(now_ns());
      times_.sent.store(n + 1);
      ++inflight;
      post_append(c);
      return true;
    }
    if (cfg_.kind == server_kind::derive) {
      out_.push_back("{\"op\":\"append\",\"id\":\"" + num + "\",\"events\":[" + event + "]}");
    } else {
      // The bytes Derive sends for this item (one item per message).
      out_.push_back("{\"op\":\"changes\",\"id\":\"s\",\"items\":[{\"offset\":" + num +
                     ",\"key\":\"" + key + "\",\"value\":" + value + "}]}");
      fifo_.push_back(n);
    }
    times_.send[n].store(now_ns());
    times_.sent.store(n + 1);
    ++inflight;
    pump();
    return true;
  }

  void post_append(http_lane* c) {
    auto self = shared_from_this();
    http::async_write(c->socket, c->req, [self, c](beast::error_code ec, size_t) {
      if (ec) return self->lane_failed(c, ec);
      c->res = {};
      http::async_read(c->socket, c->buf, c->res, [self, c](beast::error_code ec, size_t) {
        if (ec) return self->lane_failed(c, ec);
        bool ok = c->res.result_int() == 201;
        self->idle_.push_back(c);
        self->acked(c->n, ok, ok ? std::string_view() : std::string_view(c->res.body()));
      });
    });
  }

  void lane_failed(http_lane* c, beast::error_code ec) {
    if (stopped_) return;
    std::string what = "append connection: " + ec.message();
    acked(c->n, false, what);  // the connection is not reused
  }

  void pump() {
    if (writing_ || out_.empty() || stopped_) return;
    writing_ = true;
    ws_.async_write(net::buffer(out_.front()),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->writing_ = false;
                      if (ec) {
                        if (!self->stopped_) {
                          std::fprintf(stderr, "web_bench: producer write: %s\n",
                                       ec.message().c_str());
                        }
                        return;
                      }
                      self->out_.pop_front();
                      self->pump();
                    });
  }

  void do_read() {
    ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        if (!self->stopped_) {
          std::fprintf(stderr, "web_bench: producer read: %s\n", ec.message().c_str());
        }
        return;
      }
      auto data = self->buf_.data();
      self->on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
      self->buf_.consume(self->buf_.size());
      self->do_read();
    });
  }

  void on_message(std::string_view msg) {
    if (cfg_.kind == server_kind::ws) {
      if (fifo_.empty()) return;
      uint64_t n = fifo_.front();
      fifo_.pop_front();
      return acked(n, msg == "ok", msg);
    }
    bool ok = starts_with(msg, "{\"op\":\"appended\",\"id\":\"");
    bool err = starts_with(msg, "{\"op\":\"error\",\"id\":\"");
    if (!ok && !err) return;
    size_t at = msg.find("\"id\":\"") + 6;
    uint64_t n = 0;
    for (; at < msg.size() && msg[at] >= '0' && msg[at] <= '9'; ++at) {
      n = n * 10 + static_cast<uint64_t>(msg[at] - '0');
    }
    acked(n, ok, msg);
  }

  void acked(uint64_t n, bool ok, std::string_view msg) {
    if (n < times_.cap && times_.ack[n].load() == 0) times_.ack[n].store(now_ns());
    if (!ok && append_errors++ == 0) first_append_error = std::string(msg.substr(0, 300));
    if (inflight.load() > 0) --inflight;
    if (cfg_.rate == 0) fill_window();
  }

  static bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
  }

  websocket::stream<tcp::socket> ws_;
  net::steady_timer timer_;
  const fanout_config& cfg_;
  item_times& times_;
  beast::flat_buffer buf_;
  std::deque<std::string> out_;
  std::deque<uint64_t> fifo_;  // ws kind: sent, not yet acknowledged
  std::vector<std::unique_ptr<http_lane>> lanes_;  // http: all connections
  std::vector<http_lane*> idle_;                   // http: without a request
  bool writing_ = false;
  bool stopped_ = false;
  int64_t t_start_ = 0, t_end_ = 0;
};

struct fanout_run;

class subscriber : public std::enable_shared_from_this<subscriber> {
 public:
  subscriber(net::io_context& ioc, fanout_run& run) : ws_(ioc), run_(run) {}
  void start();
  void stop() { abort_socket(beast::get_lowest_layer(ws_)); }

 private:
  void on_connect(beast::error_code ec);
  void on_handshake(beast::error_code ec);
  void do_read();
  void on_read(beast::error_code ec);
  void on_message(std::string_view msg);
  void mark_ready();
  void fail(const char* what, beast::error_code ec);

  websocket::stream<tcp::socket> ws_;
  fanout_run& run_;
  beast::flat_buffer buf_;
  std::string subscribe_msg_;
  bool ready_ = false;
  bool failed_ = false;
};

// The subscribers' side, on the main thread.
struct fanout_run {
  fanout_config cfg;
  net::io_context* ioc = nullptr;
  std::string key_needle;  // "key":"<prefix>
  bool idle = false;
  bool subscribe = true;  // false: connect and upgrade only (idle memory)
  double drain = 3;
  int server_pid = 0;
  size_t max_connecting = 200;

  std::vector<std::shared_ptr<subscriber>> subs;
  size_t launched = 0, connecting = 0, ready = 0, failed = 0;
  std::string first_failure;
  int64_t subscribe_started = 0, all_ready_at = 0;

  // The producer.
  item_times times{size_t{4} << 20};
  std::unique_ptr<net::io_context> prod_ioc;
  std::shared_ptr<producer> prod;
  std::thread prod_thread;
  bool prod_failed = false;
  int64_t t0 = 0, t1 = 0;  // the measurement window (0: not started)

  // Receipts.
  uint64_t items_in_window = 0, frames_in_window = 0;
  uint64_t window_deliveries = 0;  // receipts of items sent in the window
  uint64_t total_items = 0, resets = 0, errors = 0;
  std::string first_error;
  histogram lat_send, lat_ack;
  uint64_t before_ack = 0;
  std::vector<std::pair<uint64_t, int64_t>> pending;  // (n, receipt) not yet acknowledged

  // The server.
  long rss_before = -1, rss_subscribed = -1, rss_peak = -1;
  double cpu0 = -1, cpu1 = -1, own_cpu0 = 0, own_cpu1 = 0;
  bool window_started = false, window_ended = false;
  int64_t idle_until = 0;

  std::unique_ptr<net::steady_timer> sampler;
  bool finished = false;

  void launch_more();
  void on_subscriber_done(bool ok, const std::string& why);
  void on_all_ready();
  void on_sample();
  void on_item(uint64_t n, int64_t t);
  void finish();
};

// --- subscriber ---
void subscriber::start() {
  beast::get_lowest_layer(ws_).async_connect(
      run_.cfg.endpoint,
      [self = shared_from_this()](beast::error_code ec) { self->on_connect(ec); });
}

void subscriber::fail(const char* what, beast::error_code ec) {
  if (failed_ || run_.finished) return;
  failed_ = true;
  abort_socket(beast::get_lowest_layer(ws_));
  if (!ready_) {
    run_.on_subscriber_done(false, std::string(what) + ": " + ec.message());
  } else if (run_.errors++ == 0) {
    run_.first_error = std::string("subscriber ") + what + ": " + ec.message();
  }
}

void subscriber::on_connect(beast::error_code ec) {
  if (ec) return fail("connect", ec);
  beast::get_lowest_layer(ws_).set_option(tcp::no_delay(true), ec);
  const char* path = run_.cfg.kind == server_kind::derive ? "/v1/ws" : "/sub";
  ws_.async_handshake(run_.cfg.host, path, [self = shared_from_this()](beast::error_code ec) {
    self->on_handshake(ec);
  });
}

void subscriber::on_handshake(beast::error_code ec) {
  if (ec) return fail("handshake", ec);
  ws_.text(true);
  if (!run_.subscribe) {
    mark_ready();
    return do_read();
  }
  if (run_.cfg.kind == server_kind::derive) {
    subscribe_msg_ = "{\"op\":\"subscribe\",\"id\":\"s\",\"view\":\"latest\",\"prefix\":\"" +
                     run_.cfg.prefix + "\"}";
    ws_.async_write(net::buffer(subscribe_msg_),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      if (ec) self->fail("subscribe", ec);
                    });
  }
  do_read();
}

void subscriber::do_read() {
  ws_.async_read(buf_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->on_read(ec);
  });
}

void subscriber::on_read(beast::error_code ec) {
  if (ec) return fail("read", ec);
  auto data = buf_.data();
  on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
  buf_.consume(buf_.size());
  do_read();
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

void subscriber::on_message(std::string_view msg) {
  int64_t t = now_ns();
  if (starts_with(msg, "{\"op\":\"changes\"")) {
    if (run_.t0 != 0 && t >= run_.t0 && t <= run_.t1) ++run_.frames_in_window;
    const std::string& needle = run_.key_needle;
    for (size_t at = msg.find(needle); at != std::string_view::npos;
         at = msg.find(needle, at + needle.size())) {
      uint64_t n = 0;
      for (size_t i = at + needle.size(); i < msg.size() && msg[i] >= '0' && msg[i] <= '9'; ++i) {
        n = n * 10 + static_cast<uint64_t>(msg[i] - '0');
      }
      run_.on_item(n, t);
    }
    return;
  }
  if (starts_with(msg, "{\"op\":\"snapshot\"")) {
    // A snapshot may come in several messages; the last has "more":false.
    bool last = msg.find("\"more\":false") != std::string_view::npos;
    if (msg.find("\"reset\":true") != std::string_view::npos) {
      if (last) ++run_.resets;
    } else if (!ready_ && last) {
      mark_ready();
    }
    return;
  }
  if (starts_with(msg, "{\"op\":\"ready\"")) return mark_ready();
  if (run_.errors++ == 0) run_.first_error = "subscriber got: " + std::string(msg.substr(0, 200));
}

void subscriber::mark_ready() {
  if (ready_) return;
  ready_ = true;
  run_.on_subscriber_done(true, "");
}

// --- the run ---
void fanout_run::launch_more() {
  while (launched < subs.size() && connecting < max_connecting) {
    ++connecting;
    subs[launched++]->start();
  }
}

void fanout_run::on_subscriber_done(bool ok, const std::string& why) {
  --connecting;
  if (ok) {
    ++ready;
  } else if (failed++ == 0) {
    first_failure = why;
  }
  if (ready + failed == subs.size()) return on_all_ready();
  launch_more();
}

void fanout_run::on_all_ready() {
  all_ready_at = now_ns();
  rss_subscribed = rss_kb(server_pid);
  rss_peak = rss_subscribed;
  sampler = std::make_unique<net::steady_timer>(*ioc);
  if (idle) {  // let the server settle, then measure
    idle_until = now_ns() + 2 * ns_per_s;
    return on_sample();
  }
  if (ready == 0) {
    prod_failed = true;
    std::fprintf(stderr, "web_bench: no subscriber connected (%s)\n", first_failure.c_str());
    return finish();
  }
  prod_ioc = std::make_unique<net::io_context>(1);
  prod = std::make_shared<producer>(*prod_ioc, cfg, times);
  if (!prod->open()) {
    prod_failed = true;
    return finish();
  }
  int64_t t_start = now_ns();
  t0 = t_start + static_cast<int64_t>(cfg.warmup * ns_per_s);
  t1 = t0 + static_cast<int64_t>(cfg.seconds * ns_per_s);
  prod_thread = std::thread([this, t_start] {
    prod->run(t_start, t1);
    prod_ioc->run();
  });
  on_sample();
}

// Every 100 ms: the server's memory, the window's edges, the end.
void fanout_run::on_sample() {
  if (finished) return;
  int64_t t = now_ns();
  rss_peak = std::max(rss_peak, rss_kb(server_pid));
  if (idle) {
    if (t >= idle_until) {
      rss_peak = rss_kb(server_pid);
      return finish();
    }
  } else {
    if (!window_started && t >= t0) {
      window_started = true;
      cpu0 = cpu_seconds(server_pid);
      own_cpu0 = own_cpu_seconds();
    }
    if (!window_ended && t >= t1) {
      window_ended = true;
      cpu1 = cpu_seconds(server_pid);
      own_cpu1 = own_cpu_seconds();
    }
    if (window_ended) {
      bool all_in = window_deliveries >= times.sent_between(t0, t1) * ready &&
                    prod->inflight.load() == 0;
      if (all_in || t >= t1 + static_cast<int64_t>(drain * ns_per_s)) return finish();
    }
  }
  sampler->expires_after(std::chrono::milliseconds(100));
  sampler->async_wait([this](beast::error_code ec) {
    if (!ec) on_sample();
  });
}

// Items/s and latencies count the items received in the window (whenever
// they were sent); `window_deliveries` counts the receipts of the items sent
// in the window (whenever they arrive), to tell what never arrived.
void fanout_run::on_item(uint64_t n, int64_t t) {
  ++total_items;
  if (t0 == 0 || n >= times.cap) return;
  int64_t sent = times.send[n].load(std::memory_order_relaxed);
  if (sent >= t0 && sent <= t1) ++window_deliveries;
  if (t < t0 || t > t1) return;
  ++items_in_window;
  lat_send.add((t - sent) / 1000);
  int64_t acked = times.ack[n].load(std::memory_order_relaxed);
  if (acked != 0) {
    lat_ack.add((t - acked) / 1000);
  } else {
    pending.emplace_back(n, t);  // came before its acknowledgement
  }
}

void fanout_run::finish() {
  if (finished) return;
  finished = true;
  if (sampler) sampler->cancel();
  if (prod_thread.joinable()) {
    net::post(*prod_ioc, [this] {
      prod->stop();
      prod_ioc->stop();
    });
    prod_thread.join();
  }
  for (auto& [n, t] : pending) {
    int64_t acked = times.ack[n].load();
    if (acked == 0) continue;  // never acknowledged
    if (t < acked) ++before_ack;
    lat_ack.add((t - acked) / 1000);
  }
  for (auto& s : subs) s->stop();
}

int run_fanout(const args& a, bool idle) {
  net::io_context ioc(1);
  fanout_run run;
  run.ioc = &ioc;
  uint16_t port = static_cast<uint16_t>(a.num("port", 8080));
  run.cfg.endpoint = tcp::endpoint(net::ip::make_address("127.0.0.1"), port);
  run.cfg.host = "127.0.0.1:" + std::to_string(port);
  run.cfg.kind = a.str("kind", "derive") == "ws" ? server_kind::ws : server_kind::derive;
  run.cfg.prefix = a.str("prefix", "f" + std::to_string(::getpid()) + "-");
  run.cfg.rate = a.num("rate", 0);
  run.cfg.window = static_cast<size_t>(a.num("window", 128));
  run.cfg.warmup = a.num("warmup", 1);
  run.cfg.seconds = a.num("seconds", 4);
  run.cfg.http_producer = a.str("producer", "http") == "http";
  run.key_needle = "\"key\":\"" + run.cfg.prefix;
  run.idle = idle;
  run.subscribe = a.num("subscribe", 1) != 0;
  run.drain = a.num("drain", 3);
  run.server_pid = static_cast<int>(a.num("server-pid", 0));
  run.rss_before = rss_kb(run.server_pid);
  auto subscribers = static_cast<size_t>(a.num("subscribers", 1));
  for (size_t i = 0; i < subscribers; ++i) {
    run.subs.push_back(std::make_shared<subscriber>(ioc, run));
  }
  run.subscribe_started = now_ns();
  run.launch_more();
  ioc.run();

  const char* kind = run.cfg.kind == server_kind::derive ? "derive" : "ws";
  double connect_s = static_cast<double>(run.all_ready_at - run.subscribe_started) / ns_per_s;
  if (idle) {
    std::printf(
        "RESULT test=idle kind=%s subscribed=%d subscribers=%zu ready=%zu failed=%zu connect_s=%.2f "
        "rss_before_mb=%.1f rss_subscribed_mb=%.1f rss_settled_mb=%.1f kb_per_sub=%.1f "
        "first_failure=\"%s\"\n",
        kind, run.subscribe ? 1 : 0, subscribers, run.ready, run.failed, connect_s,
        mb(run.rss_before),
        mb(run.rss_subscribed), mb(run.rss_peak),
        run.ready ? static_cast<double>(run.rss_peak - run.rss_before) / run.ready : -1.0,
        run.first_failure.c_str());
    return run.failed == 0 ? 0 : 1;
  }
  if (run.prod_failed) return 1;
  double window = static_cast<double>(run.t1 - run.t0) / ns_per_s;
  uint64_t sent = run.times.sent_between(run.t0, run.t1);
  uint64_t expected = sent * run.ready;
  double server_cpu = run.cpu1 >= 0 && run.cpu0 >= 0 ? run.cpu1 - run.cpu0 : -1;
  uint64_t append_errors = run.prod->append_errors.load();
  std::printf(
      "RESULT test=fanout kind=%s producer=%s subscribers=%zu ready=%zu failed=%zu rate=%.0f "
      "appends_per_s=%.0f items_per_s=%.0f frames_per_s=%.0f items_per_frame=%.1f "
      "expected=%llu delivered=%llu missing=%llu "
      "send_p50_ms=%.3f send_p99_ms=%.3f ack_p50_ms=%.3f ack_p99_ms=%.3f before_ack=%llu "
      "resets=%llu errors=%llu append_errors=%llu rss_before_mb=%.1f rss_subscribed_mb=%.1f "
      "rss_peak_mb=%.1f server_cpu_s=%.2f driver_cpu_s=%.2f items_per_server_cpu_s=%.0f "
      "connect_s=%.2f first_error=\"%s\" first_append_error=\"%s\" first_failure=\"%s\"\n",
      kind,
      run.cfg.kind == server_kind::ws ? "ws" : run.cfg.http_producer ? "http" : "ws",
      subscribers, run.ready, run.failed, run.cfg.rate, static_cast<double>(sent) / window,
      static_cast<double>(run.items_in_window) / window,
      static_cast<double>(run.frames_in_window) / window,
      run.frames_in_window ? static_cast<double>(run.items_in_window) / run.frames_in_window : 0,
      static_cast<unsigned long long>(expected),
      static_cast<unsigned long long>(run.window_deliveries),
      static_cast<unsigned long long>(expected > run.window_deliveries
                                          ? expected - run.window_deliveries
                                          : 0),
      run.lat_send.quantile_ms(0.5), run.lat_send.quantile_ms(0.99),
      run.lat_ack.quantile_ms(0.5), run.lat_ack.quantile_ms(0.99),
      static_cast<unsigned long long>(run.before_ack), static_cast<unsigned long long>(run.resets),
      static_cast<unsigned long long>(run.errors), static_cast<unsigned long long>(append_errors),
      mb(run.rss_before), mb(run.rss_subscribed), mb(run.rss_peak), server_cpu,
      run.own_cpu1 - run.own_cpu0,
      server_cpu > 0 ? static_cast<double>(run.items_in_window) / server_cpu : -1.0, connect_s,
      run.first_error.c_str(), run.prod->first_append_error.c_str(), run.first_failure.c_str());
  return run.failed == 0 && append_errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  args a(argc, argv);
  if (cmd == "http") return run_http(a);
  if (cmd == "fanout") return run_fanout(a, false);
  if (cmd == "idle") return run_fanout(a, true);
  std::fprintf(stderr,
               "usage: web_bench http|fanout|idle --port P [options] (see the file's header)\n");
  return 2;
}
