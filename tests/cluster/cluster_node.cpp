// A Derive node for the cluster crash test: a runtime in cluster mode with
// the tests' docs view, served on 127.0.0.1.
//   cluster_node PORT DATA_DIR NATS_URLS(comma separated) STREAM
// Prints "ready PORT" once it serves; runs until killed.

#include <unistd.h>

#include <iostream>
#include <sstream>

#include <derive/runtime.hpp>
#include <derive/view.hpp>
#include <derive/web/server.hpp>

int main(int argc, char** argv) {
  using namespace derive;
  if (argc != 5) {
    std::cerr << "usage: cluster_node PORT DATA_DIR NATS_URLS STREAM\n";
    return 2;
  }
  runtime_options o;
  o.data_dir = argv[2];
  o.storage.map_size = uint64_t{1} << 30;
  std::stringstream urls(argv[3]);
  for (std::string u; std::getline(urls, u, ',');) o.cluster.nats_urls.push_back(u);
  o.cluster.stream = argv[4];
  o.cluster.replicas = 3;
  o.cluster.publish_timeout = std::chrono::seconds(15);
  runtime rt(o);
  // doc.put stores data under the event's key, doc.delete erases it.
  rt.add_view(view_def("docs").from_log().apply([](const event& e, view_txn& tx) {
    if (e.type == "doc.put") tx.put(e.key, json::parse(e.data));
    else if (e.type == "doc.delete") tx.erase(e.key);
  }));
  if (auto s = rt.start(); !s) {
    std::cerr << "cluster_node: " << s.to_string() << "\n";
    return 1;
  }
  web::server_options so;
  so.port = static_cast<uint16_t>(std::stoi(argv[1]));
  web::server server(rt, so);
  if (auto s = server.start(); !s) {
    std::cerr << "cluster_node: " << s.to_string() << "\n";
    return 1;
  }
  std::cout << "ready " << server.port() << std::endl;
  for (;;) ::pause();
}
