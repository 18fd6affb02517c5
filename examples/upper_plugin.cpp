// The upper-case handler as a plugin for the generic worker program:
//   upper_server --start spawn --worker-exe build/bin/prefork-worker
//       -- --plugin build/lib/libupper_plugin.so
#include "upper_handler.hpp"

extern "C" prefork::Handler* prefork_create_handler() { return new UpperHandler; }
