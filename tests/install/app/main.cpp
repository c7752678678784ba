// An application built outside the Derive tree against the installed package:
// its own view, its own CAF actor that appends through the sequencer and
// receives the view's changes, and the web server. Exits 0 when every check
// holds.  usage: outside_app DATA_DIR
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <future>
#include <string>

#include <derive/actor_handles.hpp>
#include <derive/runtime.hpp>
#include <derive/view.hpp>
#include <derive/web/server.hpp>

using derive::json;

namespace {

int fail(const std::string& what) {
  std::fprintf(stderr, "outside_app: %s\n", what.c_str());
  return 1;
}

// greetings: name -> how many times it was greeted.
derive::view_def greetings_view() {
  return derive::view_def("greetings", 1).apply([](const derive::event& e, derive::view_txn& tx) {
    if (e.type != "greeted") return;
    tx.put(e.key, tx.get(e.key).value_or(0).get<int64_t>() + 1);
  });
}

// On `ok`, greets "ada" three times through the sequencer; reports when the
// view's change for the third greeting arrives.
caf::behavior greeter(caf::event_based_actor* self, derive::sequencer_actor seq,
                      std::shared_ptr<std::promise<int64_t>> seen) {
  return {
      [=](caf::ok_atom) {
        for (int i = 0; i < 3; ++i) {
          derive::append_request req;
          req.events.push_back({"greeted", "ada", "", "null"});
          self->request(seq, caf::infinite, derive::append_atom::value, req)
              .then([](const derive::append_outcome&) {},
                    [seen](caf::error& e) {
                      seen->set_exception(std::make_exception_ptr(
                          std::runtime_error(derive::to_status(e).to_string())));
                    });
        }
      },
      [=](derive::changes_atom, const derive::change_batch& batch) {
        for (auto& c : batch.items)
          if (c->value && json::parse(*c->value) == 3) {
            seen->set_value(3);
            self->quit();
          }
      },
      [](derive::lost_atom, uint64_t) {},
  };
}

// GET `path` from 127.0.0.1:port; returns the whole response.
std::string http_get(uint16_t port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return "";
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::write(fd, req.data(), req.size()) < 0) return "";
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return fail("usage: outside_app DATA_DIR");
  derive::runtime_options opts;
  opts.data_dir = argv[1];
  derive::runtime rt(opts);
  rt.add_view(greetings_view());
  if (auto st = rt.start(); !st) return fail(st.to_string());
  derive::web::server_options web_opts;
  web_opts.port = 0;
  derive::web::server srv(rt, web_opts);
  if (auto st = srv.start(); !st) return fail(st.to_string());

  auto seen = std::make_shared<std::promise<int64_t>>();
  auto result = seen->get_future();
  auto actor = rt.system().spawn(greeter, derive::sequencer_of(rt), seen);
  if (auto sub = derive::subscribe_actor(rt, {"greetings", std::string("ada"), ""}, actor); !sub)
    return fail(sub.error().to_string());
  caf::anon_send(actor, caf::ok_atom::value);
  if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
    return fail("the actor never saw its third greeting");
  if (result.get() != 3) return fail("wrong count");

  auto response = http_get(srv.port(), "/v1/views/greetings/ada?after=3");
  if (response.find("200 OK") == std::string::npos ||
      response.find("\"value\":3") == std::string::npos)
    return fail("unexpected HTTP answer:\n" + response);
  srv.stop();
  rt.stop();
  std::printf("outside_app: ok\n");
  return 0;
}
