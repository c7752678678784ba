// The complete example of docs/writing-a-view.md: a small stock-keeping
// application. It compiles as part of the build and runs as a test
// (actors_guide_example), which fails if any expectation below does not hold.
//
//   writing_a_view [data_dir]      (default: a fresh directory under /tmp,
//                                   removed at the end)
//   writing_a_view --serve DIR     keeps running until SIGINT/SIGTERM

#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>

#include <derive/actor_handles.hpp>
#include <derive/logging.hpp>
#include <derive/runtime.hpp>
#include <derive/signals.hpp>
#include <derive/view.hpp>

using derive::json;

// --- 1. Views ---------------------------------------------------------------

// stock: item -> {"qty": n}. Applies "stock.added" and "stock.removed"
// events whose data is {"qty": n}; other event types change nothing.
derive::view_def stock_view() {
  return derive::view_def("stock", 1)
      .from_log()
      .apply([](const derive::event& e, derive::view_txn& tx) {
        if (e.type != "stock.added" && e.type != "stock.removed") return;
        auto qty = json::parse(e.data).at("qty").get<int64_t>();
        if (e.type == "stock.removed") qty = -qty;
        auto item = tx.get(e.key).value_or(json{{"qty", 0}});
        item["qty"] = item["qty"].get<int64_t>() + qty;
        if (item["qty"] == 0) tx.erase(e.key);
        else tx.put(e.key, item);
      })
      // GET /v1/query/stock/below?qty=N: the items with fewer than N.
      .query("below", [](const derive::view_snapshot& snap, const derive::query_params& params)
                          -> derive::result<json> {
        auto it = params.find("qty");
        if (it == params.end())
          return derive::status{derive::errc::invalid_parameter, "qty is required"};
        int64_t limit = std::stoll(it->second);
        json items = json::array();
        auto page = snap.range("", "", 10'000);
        if (!page) return page.error();
        for (auto& kv : page->items)
          if (json::parse(kv.value)["qty"].get<int64_t>() < limit) items.push_back(kv.key);
        return json{{"items", items}};
      });
}

// low: derived from stock, not from the log. One key per item that has fewer
// than 5 in stock (an item that runs out disappears from stock, so it
// disappears here too).
derive::view_def low_view() {
  return derive::view_def("low", 1)
      .from_view("stock")
      .apply_change([](const derive::upstream_change& c, derive::view_txn& tx) {
        if (c.value && (*c.value)["qty"].get<int64_t>() < 5) tx.put(c.key, (*c.value)["qty"]);
        else tx.erase(c.key);
      });
}

// --- 2. An actor of the application -----------------------------------------

// Subscribed to "low": appends one "stock.reorder" event per item that
// becomes low, through the sequencer's typed handle.
using reorder_done = std::function<void(std::string item, uint64_t offset)>;

caf::behavior reorderer(caf::event_based_actor* self, derive::sequencer_actor sequencer,
                        reorder_done done) {
  return {
      [=](derive::changes_atom, const derive::change_batch& batch) {
        for (auto& change : batch.items) {
          if (!change->value) continue;  // no longer low
          derive::append_request request;
          derive::event_input e;
          e.type = "stock.reorder";
          e.key = change->key;
          request.events.push_back(e);
          std::string item = change->key;
          self->request(sequencer, caf::infinite, derive::append_atom::value, std::move(request))
              .then([=](const derive::append_outcome& out) { done(item, out.first_offset); },
                    [](caf::error& err) {
                      derive::log_error("reorderer", derive::to_status(err).to_string());
                    });
        }
      },
      [](derive::lost_atom, uint64_t) {
        // Fell behind: a real application would re-read the "low" view here.
      },
  };
}

// --- 3. Main -----------------------------------------------------------------

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

// Blocking helpers: fine on main's own thread, never on a runtime thread.
derive::result<derive::append_outcome> append(derive::runtime& rt, std::string type,
                                              std::string key, json data) {
  derive::append_request request;
  request.events.push_back({std::move(type), std::move(key), "", data.dump()});
  std::promise<derive::result<derive::append_outcome>> done;
  rt.append(std::move(request), [&](derive::result<derive::append_outcome> r) {
    done.set_value(std::move(r));
  });
  return done.get_future().get();
}

bool wait_for(derive::runtime& rt, const std::string& view, uint64_t offset) {
  std::promise<derive::status> done;
  rt.wait_for(view, offset, std::chrono::seconds(10),
              [&](derive::status st) { done.set_value(st); });
  return done.get_future().get().is_ok();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  bool serve = false, temporary = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--serve") serve = true;
    else dir = arg;
  }
  if (dir.empty()) {
    std::string pattern = "/tmp/derive-guide-XXXXXX";
    dir = ::mkdtemp(pattern.data());
    temporary = true;
  }

  // Declared before the runtime, which outlives the actors that use it.
  std::promise<std::string> reordered;  // the first item reordered

  derive::runtime_options options;
  options.data_dir = dir;
  derive::stop_signals signals;  // Ctrl-C and SIGTERM wake signals.wait()
  derive::runtime rt(options);
  rt.add_view(stock_view());
  rt.add_view(low_view());
  rt.add_validator("stock.added", [](const derive::event_input& e) {
    auto data = json::parse(e.data);
    if (!data.is_object() || !data.contains("qty") || !data["qty"].is_number_integer() ||
        data["qty"].get<int64_t>() <= 0)
      return derive::status{derive::errc::invalid_event, "data.qty must be a positive integer"};
    return derive::status::ok();
  });
  if (auto st = rt.start(); !st) {
    std::fprintf(stderr, "cannot start: %s\n", st.to_string().c_str());
    return 1;
  }
  if (serve) {
    signals.wait();  // the web layer would be started here too
    rt.stop();
    return 0;
  }

  // The application's actor, subscribed to the derived view.
  auto first = std::make_shared<std::once_flag>();
  auto actor = rt.system().spawn(
      reorderer, derive::sequencer_of(rt), reorder_done([&, first](std::string item, uint64_t) {
        std::call_once(*first, [&] { reordered.set_value(item); });
      }));
  derive::subscription_filter low_items;
  low_items.view = "low";
  expect(derive::subscribe_actor(rt, low_items, caf::actor_cast<caf::actor>(actor)).has_value(),
         "the actor subscribes to view low");

  expect(append(rt, "stock.added", "apples", {{"qty", 10}}).has_value(), "10 apples added");
  expect(append(rt, "stock.added", "pears", {{"qty", 3}}).has_value(), "3 pears added");
  auto bad = append(rt, "stock.added", "plums", {{"qty", -1}});
  expect(!bad && bad.error().code() == derive::errc::invalid_event,
         "a negative quantity is refused by the validator");
  auto last = append(rt, "stock.removed", "apples", {{"qty", 8}});
  expect(last.has_value(), "8 apples removed");

  // Read your writes: wait until the views include the last append.
  expect(wait_for(rt, "stock", last->first_offset), "stock reached the last append");
  expect(wait_for(rt, "low", last->first_offset), "low reached the last append");
  {
    // Snapshots hold an LMDB read transaction: keep them short-lived, and
    // release them before the runtime stops.
    auto snap = rt.snapshot("stock");
    auto apples = snap->get("apples");
    expect(apples && *apples && json::parse(**apples)["qty"] == 2, "2 apples left");
    auto low = rt.snapshot("low");
    expect(low && low->offset() >= last->first_offset,
           "low's snapshot includes the last append (the reorderer may have appended since)");
  }
  auto below = rt.query("stock", "below", {{"qty", "5"}});
  expect(below && (*below)["items"] == json({"apples", "pears"}), "apples and pears are below 5");

  auto item = reordered.get_future();
  expect(item.wait_for(std::chrono::seconds(10)) == std::future_status::ready,
         "the actor reordered an item");

  for (auto& v : rt.views())
    std::printf("view %s v%u: offset %llu, %s\n", v.name.c_str(), v.version,
                static_cast<unsigned long long>(v.offset), std::string(to_string(v.status)).c_str());
  caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  rt.stop();
  if (temporary) std::filesystem::remove_all(dir);
  std::printf("%s\n", failures == 0 ? "all good" : "FAILED");
  return failures == 0 ? 0 : 1;
}
