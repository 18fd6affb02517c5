// prefork-worker: the generic worker program for spawn mode. A master
// started with `--start spawn --worker-exe prefork-worker -- ARGS` runs it
// in each slot; ARGS choose the handler: a built-in one, or a plugin (a
// shared object exporting prefork_create_handler), as uWSGI loads apps.
#include <prefork/handler.hpp>
#include <prefork/worker.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

namespace {

// Sends back what it received.
class EchoHandler final : public prefork::Handler {
 public:
  void handle(const prefork::Request&, std::string_view data, prefork::Reply& reply) override {
    reply.send(data);
  }
};

// Answers nothing: a sink for load tests.
class DiscardHandler final : public prefork::Handler {};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: prefork-worker [--handler echo|discard] [--plugin PATH.so]\n"
               "\n"
               "Runs as a worker of a spawn-mode prefork master, which passes the listening\n"
               "sockets (LISTEN_FDS) and the scoreboard in the environment, e.g.\n"
               "  upper_server --start spawn --worker-exe prefork-worker -- --handler echo\n"
               "A plugin exports: extern \"C\" prefork::Handler* prefork_create_handler();\n");
}

using CreateHandler = prefork::Handler* (*)();

}  // namespace

int main(int argc, char** argv) {
  std::string_view builtin = "echo";
  const char* plugin = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help") {
      usage(stdout);
      return 0;
    }
    if ((arg == "--handler" || arg == "--plugin") && i + 1 < argc) {
      (arg == "--handler" ? builtin = argv[++i] : plugin = argv[++i]);
      continue;
    }
    std::fprintf(stderr, "prefork-worker: bad argument '%s'\n", argv[i]);
    usage(stderr);
    return prefork::exit_usage;
  }
  if (!prefork::started_as_worker()) {
    std::fprintf(stderr, "prefork-worker: not started by a prefork master (no LISTEN_FDS)\n");
    usage(stderr);
    return prefork::exit_usage;
  }

  std::unique_ptr<prefork::Handler> handler;
  if (plugin != nullptr) {
    void* library = ::dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
    auto create = library
                      ? reinterpret_cast<CreateHandler>(::dlsym(library, "prefork_create_handler"))
                      : nullptr;
    if (create == nullptr) {
      std::fprintf(stderr, "prefork-worker: cannot load plugin %s: %s\n", plugin, ::dlerror());
      return prefork::worker_exit_boot_error;
    }
    handler.reset(create());
  } else if (builtin == "echo") {
    handler = std::make_unique<EchoHandler>();
  } else if (builtin == "discard") {
    handler = std::make_unique<DiscardHandler>();
  } else {
    std::fprintf(stderr, "prefork-worker: unknown handler '%.*s' (echo, discard)\n",
                 static_cast<int>(builtin.size()), builtin.data());
    return prefork::worker_exit_boot_error;
  }
  return prefork::serve_as_worker(*handler);
}
