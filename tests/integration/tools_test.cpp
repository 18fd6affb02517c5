// The programs around upper_server: prefork-top reading its scoreboard (in
// the table piped, live on a pseudo-terminal, as JSON and as the metrics
// exposition), the generic worker host loading a plugin, and the Python
// example clients.
#define BOOST_TEST_MODULE integration_tools
#include <boost/test/unit_test.hpp>

#include "fixture.hpp"
#include "pattern.hpp"

#include <prefork/core/scoreboard_segment.hpp>
#include <prefork/exposition.hpp>

// Header-only Boost.JSON: the tests need no compiled Boost library but
// Boost.Test.
#include <boost/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <sstream>
#include <system_error>

using namespace prefork::test;
namespace utf = boost::unit_test;
namespace json = boost::json;

namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// --- prefork-top's table, as text --------------------------------------

std::vector<std::string> tokens(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string token; in >> token;) out.push_back(token);
  return out;
}

using Row = std::map<std::string, std::string>;  // column title -> cell

// One refresh of the table: from its timestamped first line to the next.
struct Block {
  std::vector<std::string> lines;
  std::vector<Row> rows;  // the slots, then TOTAL

  bool complete() const { return !rows.empty() && rows.back().at("SLOT") == "TOTAL"; }
  const Row& total() const { return rows.back(); }
  std::vector<Row> slots() const { return {rows.begin(), rows.end() - (complete() ? 1 : 0)}; }

  // The token after `label` in the header lines ("req/s" -> "12.5"), or "".
  std::string after(const std::string& label) const {
    for (const std::string& line : lines) {
      if (line.starts_with(" SLOT")) break;
      const std::vector<std::string> t = tokens(line);
      for (std::size_t i = 0; i + 1 < t.size(); ++i)
        if (t[i] == label) return t[i + 1];
    }
    return "";
  }
};

// "2026-11-27 07:30:00.874  prefork-top NAME  master 123  up 00:00:01"
bool starts_block(const std::string& line) {
  static const Pattern first_line(
      R"(^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}  prefork-top .*  master \d+  up .*)");
  return first_line.matches(line);
}

// The blocks in prefork-top's output, complete lines only (the pipe may
// hold half of the last one).
std::vector<Block> blocks_of(const std::string& text) {
  std::vector<Block> blocks;
  std::size_t begin = 0;
  for (std::size_t end; (end = text.find('\n', begin)) != std::string::npos; begin = end + 1) {
    const std::string line = text.substr(begin, end - begin);
    if (starts_block(line)) blocks.emplace_back();
    if (!blocks.empty()) blocks.back().lines.push_back(line);
  }
  for (Block& block : blocks) {
    std::vector<std::string> titles;
    for (const std::string& line : block.lines) {
      const std::vector<std::string> t = tokens(line);
      if (titles.empty()) {
        if (!t.empty() && t[0] == "SLOT") titles = t;
        continue;
      }
      if (t.size() != titles.size()) break;  // past the table
      Row row;
      for (std::size_t i = 0; i < t.size(); ++i) row[titles[i]] = t[i];
      block.rows.push_back(row);
    }
  }
  return blocks;
}

std::vector<Block> complete_blocks(const std::string& text) {
  std::vector<Block> blocks = blocks_of(text);
  std::erase_if(blocks, [](const Block& b) { return !b.complete(); });
  return blocks;
}

std::optional<double> number(const std::string& cell) {
  char* end = nullptr;
  const double value = std::strtod(cell.c_str(), &end);
  if (cell.empty() || *end != '\0') return std::nullopt;
  return value;
}

std::string blocks_text(const std::vector<Block>& blocks) {
  std::string text;
  for (const Block& b : blocks)
    for (const std::string& line : b.lines) text += line + "\n";
  return text;
}

// prefork-top piped, refreshing every 0.2 s, until `enough` of its blocks
// have come (bounded by state_timeout); then stopped with SIGTERM, as a
// user would stop it. Returns every complete block.
std::vector<Block> watch(const std::string& stats_name,
                         const std::function<bool(const std::vector<Block>&)>& enough,
                         const std::function<void()>& after_first_block = {}) {
  ServerProcess top(bin_path("prefork-top"), {"--interval", "0.2", stats_name});
  BOOST_TEST_REQUIRE(
      wait_until([&] { return !complete_blocks(top.stdout_text()).empty(); }, state_timeout),
      top.describe());
  if (after_first_block) after_first_block();
  const bool satisfied =
      wait_until([&] { return enough(complete_blocks(top.stdout_text())); }, state_timeout, 20ms);
  top.signal(SIGTERM);
  BOOST_TEST(status_or_running(top.wait_exit(state_timeout)) == 0, top.describe());
  BOOST_TEST(satisfied, top.describe());
  const std::string out = top.stdout_text(1'000ms);
  BOOST_TEST(!contains(out, "\x1b"), "escape bytes in piped output");
  return complete_blocks(out);
}

// --- prefork-top on a pseudo-terminal ----------------------------------

// prefork-top as someone runs it by hand: in its own session, with a
// pseudo-terminal as its controlling terminal and stdin/stdout/stderr. The
// test keeps the terminal's slave side open too, to read its modes after
// prefork-top has gone.
class PtyProcess {
 public:
  PtyProcess(const std::vector<std::string>& args, unsigned short columns, unsigned short rows) {
    winsize size{};
    size.ws_col = columns;
    size.ws_row = rows;
    if (::openpty(&master_, &slave_, nullptr, nullptr, &size) != 0)
      throw std::system_error(errno, std::generic_category(), "openpty");
    ::fcntl(master_, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave_, F_SETFD, FD_CLOEXEC);
    ::tcgetattr(slave_, &initial_);
    // Built before fork: the child of a threaded test may only make
    // async-signal-safe calls before exec.
    std::vector<std::string> all{bin_path("prefork-top")};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::setsid() < 0 || ::ioctl(slave_, TIOCSCTTY, 0) != 0) ::_exit(126);
      for (int fd = 0; fd <= 2; ++fd) ::dup2(slave_, fd);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;
  ~PtyProcess() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    ::close(master_);
    ::close(slave_);
  }

  pid_t pid() const noexcept { return pid_; }
  const std::string& output() const noexcept { return output_; }
  const termios& initial_modes() const noexcept { return initial_; }
  termios modes() const {
    termios now{};
    ::tcgetattr(slave_, &now);
    return now;
  }

  // Reads what prefork-top writes until `done(output)`; false on timeout.
  bool wait_for(const std::function<bool(const std::string&)>& done,
                Milliseconds timeout = state_timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!done(output_)) {
      if (Clock::now() >= deadline) return false;
      read_for(20ms);
    }
    return true;
  }

  void type(std::string_view keys) {
    BOOST_REQUIRE(::write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
  }
  // The kernel sends SIGWINCH to the terminal's foreground process group.
  void resize(unsigned short columns, unsigned short rows) {
    winsize size{};
    size.ws_col = columns;
    size.ws_row = rows;
    BOOST_REQUIRE(::ioctl(master_, TIOCSWINSZ, &size) == 0);
  }
  void signal(int sig) {
    if (!status_) ::kill(pid_, sig);
  }

  // The exit status (128 + signal when killed), or nullopt on timeout.
  std::optional<int> wait_exit(Milliseconds timeout = state_timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!status_ && Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_)
        status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      else
        read_for(10ms);
    }
    if (status_) read_for(0ms);  // its last words
    return status_;
  }

  std::string describe() const {
    std::string text = "prefork-top on a pty [pid " + std::to_string(pid_) + "; ";
    text += status_ ? "exit status " + std::to_string(*status_) : std::string("running");
    return text + "]\n--- output ---\n" + output_;
  }

 private:
  void read_for(Milliseconds wait) {
    pollfd p{master_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
      char buffer[8192];
      const ssize_t n = ::read(master_, buffer, sizeof buffer);
      if (n <= 0) return;
      output_.append(buffer, static_cast<std::size_t>(n));
      wait = 0ms;  // drain what is there, then return
    }
  }

  int master_ = -1, slave_ = -1;
  pid_t pid_ = -1;
  termios initial_{};
  std::optional<int> status_;
  std::string output_;
};

constexpr std::string_view cursor_home = "\x1b[H", clear_screen = "\x1b[2J",
                           hide_cursor = "\x1b[?25l", show_cursor = "\x1b[?25h";

// The screen lines of one frame, control sequences removed.
std::vector<std::string> screen_lines(std::string_view frame) {
  static const Pattern control("\x1b\\[[0-9;?]*[@-~]");
  const std::string plain = control.replaced(frame, "");
  std::vector<std::string> lines;
  std::size_t begin = 0;
  for (std::size_t end; (end = plain.find('\n', begin)) != std::string::npos; begin = end + 1)
    lines.push_back(plain.substr(begin, end - begin));
  lines.push_back(plain.substr(begin));
  for (std::string& line : lines) std::erase(line, '\r');
  return lines;
}

// The frames drawn after `from` in the output: each starts with cursor
// home; the last one may still be arriving, so it is left out.
std::vector<std::string> frames_after(const std::string& output, std::size_t from) {
  std::vector<std::string> frames;
  std::size_t at = output.find(cursor_home, from);
  while (at != std::string::npos) {
    const std::size_t next = output.find(cursor_home, at + cursor_home.size());
    if (next == std::string::npos) break;
    frames.push_back(output.substr(at, next - at));
    at = next;
  }
  return frames;
}

// --- the other programs -----------------------------------------------

bool in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');)
    if (::access((dir + "/" + program).c_str(), X_OK) == 0) return true;
  return false;
}

std::string client_script(const std::string& name) {
  return source_path("examples/clients/" + name);
}

boost::test_tools::assertion_result python_clients_available(utf::test_unit_id) {
  boost::test_tools::assertion_result result(true);
  if (!in_path("python3")) {
    result = false;
    result.message() << "python3 is not in PATH";
  }
  for (const char* name : {"udp_client.py", "tcp_client.py", "framed_client.py"}) {
    if (!std::filesystem::exists(client_script(name))) {
      result = false;
      result.message() << client_script(name) << " does not exist yet; ";
    }
  }
  return result;
}

// The plugin the lead's build makes for prefork-worker; its exact file name
// is whatever CMake gives the upper_plugin target.
std::string upper_plugin_path() {
  for (const char* name : {"libupper_plugin.so", "upper_plugin.so"})
    if (std::filesystem::exists(lib_path(name))) return lib_path(name);
  return lib_path("libupper_plugin.so");
}

bool input_modes_as(const termios& now, const termios& expected) {
  const tcflag_t watched = ICANON | ECHO | ISIG;
  return (now.c_lflag & watched) == (expected.c_lflag & watched);
}

}  // namespace

BOOST_AUTO_TEST_CASE(prefork_top_json_matches_the_scoreboard) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 7; ++i) BOOST_TEST(client.request_frame("count me") == "COUNT ME");
  BOOST_TEST_REQUIRE(server.requests_when_at_least(7) == 7u);

  Finished top = run_to_end(bin_path("prefork-top"), {"--json", "--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  json::value document = json::parse(top.out);
  const json::object& root = document.as_object();
  BOOST_TEST(root.at("master_pid").to_number<pid_t>() == server.pid());
  std::vector<pid_t> pids;
  for (const json::value& worker : root.at("workers").as_array())
    pids.push_back(worker.as_object().at("pid").to_number<pid_t>());
  std::vector<pid_t> expected = worker_pids(server.ready_snapshot());
  std::sort(pids.begin(), pids.end());
  std::sort(expected.begin(), expected.end());
  BOOST_TEST(pids == expected, boost::test_tools::per_element());
  const json::object& totals = root.at("totals").as_object();
  BOOST_TEST(totals.at("requests").to_number<std::uint64_t>() == 7u);
  BOOST_TEST(totals.at("errors").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(totals.at("worker_restarts").to_number<std::uint64_t>() == 0u);
  BOOST_TEST(totals.at("bytes_in").to_number<std::uint64_t>() == 7u * (4 + 8));
  BOOST_TEST(totals.at("bytes_out").to_number<std::uint64_t>() == 7u * (4 + 8));
}

// A scoreboard the test writes itself, with figures no real server would
// have yet (a restart, errors, retired requests) and a name that JSON must
// escape: every one must come out as written.
BOOST_AUTO_TEST_CASE(prefork_top_shows_exactly_what_the_scoreboard_holds) {
  const ShmGuard shm(unique_stats_name() + "_q\"b\\s\t");
  prefork::Scoreboard board = prefork::Scoreboard::create(shm.name(), 2);
  prefork::Slot& s = board.slot(1);
  s.pid = 31337;
  s.state = prefork::WorkerState::ready;
  s.generation = 3;
  s.connections_active = 1;
  s.counters.requests = 42;
  s.counters.bytes_in = 3 * 1024 * 1024;
  s.counters.bytes_out = 2000;
  s.counters.connections_total = 5;
  s.counters.errors = 2;
  board.header().retired.requests = 8;
  board.header().worker_restarts = 1;

  Finished top = run_to_end(bin_path("prefork-top"), {"--json", "--once", shm.name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  BOOST_TEST(top.err == "");
  const json::object doc = json::parse(top.out).as_object();
  BOOST_TEST(doc.at("name").as_string() == shm.name());
  BOOST_TEST(doc.at("master_pid").to_number<pid_t>() == ::getpid());
  BOOST_TEST(doc.at("uptime_s").to_number<double>() >= 0.0);
  BOOST_TEST(doc.at("worker_restarts").to_number<int>() == 1);
  const json::array& workers = doc.at("workers").as_array();
  BOOST_TEST_REQUIRE(workers.size() == 2u);
  const json::object& w = workers[1].as_object();
  BOOST_TEST(w.at("slot").to_number<int>() == 1);
  BOOST_TEST(w.at("pid").to_number<int>() == 31337);
  BOOST_TEST(w.at("state").as_string() == "ready");
  BOOST_TEST(w.at("generation").to_number<int>() == 3);
  BOOST_TEST(w.at("requests").to_number<int>() == 42);
  BOOST_TEST(w.at("bytes_in").to_number<int>() == 3 * 1024 * 1024);
  BOOST_TEST(w.at("bytes_out").to_number<int>() == 2000);
  BOOST_TEST(w.at("connections_active").to_number<int>() == 1);
  BOOST_TEST(w.at("connections_total").to_number<int>() == 5);
  BOOST_TEST(w.at("errors").to_number<int>() == 2);
  BOOST_TEST(w.contains("started_ns"));
  BOOST_TEST(w.contains("heartbeat_ns"));
  BOOST_TEST(workers[0].as_object().at("state").as_string() == "empty");
  const json::object& totals = doc.at("totals").as_object();
  BOOST_TEST(totals.at("requests").to_number<int>() == 50);
  BOOST_TEST(totals.at("errors").to_number<int>() == 2);
  BOOST_TEST(totals.at("worker_restarts").to_number<int>() == 1);
  BOOST_TEST(totals.at("bytes_in").to_number<int>() == 3 * 1024 * 1024);
  BOOST_TEST(totals.at("bytes_out").to_number<int>() == 2000);
  BOOST_TEST(totals.at("connections_total").to_number<int>() == 5);

  Finished table = run_to_end(bin_path("prefork-top"), {"--once", shm.name()});
  BOOST_TEST_REQUIRE(status_or_running(table.status) == 0, table.description);
  const std::vector<Block> blocks = blocks_of(table.out);
  BOOST_TEST_REQUIRE(blocks.size() == 1u, table.out);
  BOOST_TEST_REQUIRE(blocks[0].complete(), table.out);
  BOOST_TEST(contains(table.out, "workers 1/2 ready"), table.out);
  BOOST_TEST(blocks[0].after("in") == "3.0M", table.out);
  BOOST_TEST(blocks[0].total().at("REQUESTS") == "50", table.out);
  BOOST_TEST(blocks[0].slots().at(1).at("PID") == "31337", table.out);
  // The name's tab is not printed as is.
  BOOST_TEST(!contains(table.out, "\t"));
  BOOST_TEST(!contains(table.out, "\x1b"));
}

BOOST_AUTO_TEST_CASE(prefork_top_json_repeats_one_document_per_line) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  ServerProcess top(bin_path("prefork-top"), {"--json", "--interval", "0.2", server.stats_name()});
  auto lines = [&] { return count_of(top.stdout_text(), "\n"); };
  const bool three = wait_until([&] { return lines() >= 3; }, state_timeout, 20ms);
  top.signal(SIGTERM);
  BOOST_TEST(status_or_running(top.wait_exit(state_timeout)) == 0, top.describe());
  BOOST_TEST_REQUIRE(three, top.describe());
  std::istringstream out(top.stdout_text(1'000ms));
  for (std::string line; std::getline(out, line);) BOOST_TEST(json::parse(line).is_object(), line);
}

BOOST_AUTO_TEST_CASE(prefork_top_exits_1_when_the_segment_is_missing) {
  const std::string name = unique_stats_name();
  Finished top = run_to_end(bin_path("prefork-top"), {"--once", name});
  BOOST_TEST(status_or_running(top.status) == 1, top.description);
  BOOST_TEST(top.out == "");
  BOOST_TEST(top.err == "prefork-top: no stats segment named " + name +
                            " (is the server running with --stats " + name + "?)\n",
             top.description);
}

BOOST_AUTO_TEST_CASE(prefork_top_help_prints_the_usage) {
  Finished top = run_to_end(bin_path("prefork-top"), {"--help"});
  BOOST_TEST(status_or_running(top.status) == 0, top.description);
  BOOST_TEST(top.out.starts_with("usage: prefork-top"), top.description);
  BOOST_TEST(top.err == "");
}

BOOST_AUTO_TEST_CASE(prefork_top_rejects_bad_flags_with_status_2) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const std::string name = server.stats_name();
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--bogus", name},
                                             {"--interval", "0", name},
                                             {"--interval", "soon", name},
                                             {"--json", "--prometheus", name},
                                             {"--prometheus=xml", name},
                                             {name, "another"},
                                             {}}) {
    Finished top = run_to_end(bin_path("prefork-top"), args);
    BOOST_TEST_CONTEXT(top.description) {
      BOOST_TEST(status_or_running(top.status) == 2);
      BOOST_TEST(contains(top.err, "usage: prefork-top"));
      BOOST_TEST(top.out == "");
    }
  }
}

BOOST_AUTO_TEST_CASE(prefork_top_once_shows_one_row_per_worker) {
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0"});
  Finished top = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  BOOST_TEST(!contains(top.out, "\x1b"));
  const std::vector<Block> blocks = blocks_of(top.out);
  BOOST_TEST_REQUIRE(blocks.size() == 1u, top.out);
  const Block& block = blocks.front();
  BOOST_TEST_REQUIRE(block.complete(), top.out);
  BOOST_TEST(contains(block.lines.front(), "master " + std::to_string(server.pid())));
  BOOST_TEST(contains(top.out, "workers 2/2 ready"));
  // Every listener is shown: the framed one with its accept queue (none
  // published yet, or depth/limit), UDP without one.
  const Pattern framed_line("listener framed " + server.endpoint("framed").host_port() +
                            "  accept queue (\\?|\\d+/\\d+)");
  const std::string udp_line = "listener udp " + server.endpoint("udp").host_port();
  BOOST_TEST(std::count_if(block.lines.begin(), block.lines.end(),
                           [&](const std::string& l) { return framed_line.matches(l); }) == 1,
             top.out);
  BOOST_TEST(std::count(block.lines.begin(), block.lines.end(), udp_line) == 1, top.out);
  // No connection yet: no share to compare.
  BOOST_TEST(block.after("max/min") == "-", top.out);

  const prefork::ScoreboardSnapshot& ready = server.ready_snapshot();
  const std::vector<Row> rows = block.slots();
  BOOST_TEST_REQUIRE(rows.size() == ready.slots.size(), top.out);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    BOOST_TEST_CONTEXT("slot " << i) {
      BOOST_TEST(rows[i].at("SLOT") == std::to_string(i));
      BOOST_TEST(rows[i].at("PID") == std::to_string(ready.slots[i].pid));
      BOOST_TEST(rows[i].at("STATE") == "ready");
      BOOST_TEST(rows[i].at("REQ/S") == "-");  // one snapshot: no rate yet
    }
  }
  BOOST_TEST(block.after("req/s") == "-");
}

BOOST_AUTO_TEST_CASE(prefork_top_piped_prints_timestamped_blocks) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  const std::vector<Block> blocks =
      watch(server.stats_name(), [](const std::vector<Block>& b) { return b.size() >= 3; });
  BOOST_TEST_REQUIRE(blocks.size() >= 3u);
  // Each block starts with its own time; the first has no rates yet.
  for (std::size_t i = 1; i < blocks.size(); ++i) {
    BOOST_TEST(blocks[i].lines.front().substr(0, 23) > blocks[i - 1].lines.front().substr(0, 23),
               blocks_text(blocks));
    BOOST_TEST(number(blocks[i].after("req/s")).has_value(), blocks_text({blocks[i]}));
  }
  BOOST_TEST(blocks.front().after("req/s") == "-");
}

BOOST_AUTO_TEST_CASE(prefork_top_shows_the_request_rate_under_load) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  constexpr int requests = 200;
  auto busy = [](const Block& b) { return number(b.total().at("REQ/S")).value_or(0) > 0; };
  const std::vector<Block> blocks = watch(
      server.stats_name(),
      [&](const std::vector<Block>& b) {
        // A rate while the load ran, and then every request counted.
        return std::any_of(b.begin(), b.end(), busy) &&
               b.back().total().at("REQUESTS") == std::to_string(requests);
      },
      [&] {
        auto client = TcpClient::connect(server.endpoint("framed"));
        for (int i = 0; i < requests; ++i) BOOST_TEST_REQUIRE(client.request_frame("x") == "X");
      });
  const auto loaded = std::find_if(blocks.begin(), blocks.end(), busy);
  BOOST_TEST_REQUIRE((loaded != blocks.end()), blocks_text(blocks));
  BOOST_TEST(number(loaded->after("req/s")).value_or(0) > 0, blocks_text({*loaded}));
  // The worker that served shows its own rate and latency too.
  const std::vector<Row> rows = loaded->slots();
  BOOST_TEST(std::any_of(rows.begin(), rows.end(),
                         [](const Row& r) { return number(r.at("REQ/S")).value_or(0) > 0; }),
             blocks_text({*loaded}));
  BOOST_TEST(std::any_of(blocks.begin(), blocks.end(),
                         [](const Block& b) { return b.total().at("P99") != "-"; }),
             blocks_text(blocks));
}

BOOST_AUTO_TEST_CASE(prefork_top_shows_the_accept_share) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  constexpr std::uint64_t connections = 12;
  for (std::uint64_t i = 0; i < connections; ++i) {
    auto client = TcpClient::connect(server.endpoint("framed"));
    BOOST_TEST_REQUIRE(client.request_frame("share") == "SHARE");
  }
  const auto counted = server.when([&](const prefork::ScoreboardSnapshot& s) {
    return s.totals.connections_total == connections && s.totals.requests == connections;
  });
  BOOST_TEST_REQUIRE(counted.has_value());

  Finished top = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  const std::vector<Block> blocks = blocks_of(top.out);
  BOOST_TEST_REQUIRE(blocks.size() == 1u, top.out);
  std::uint64_t low = UINT64_MAX, high = 0;
  for (const prefork::SlotSnapshot& s : counted->slots) {
    low = std::min(low, s.counters.connections_total);
    high = std::max(high, s.counters.connections_total);
  }
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.2f",
                static_cast<double>(high) / static_cast<double>(std::max<std::uint64_t>(low, 1)));
  // A worker that has accepted none yet makes the ratio meaningless.
  const std::string expected_ratio = low == 0 ? "-" : ratio;
  BOOST_TEST(blocks[0].after("max/min") == expected_ratio, top.out);
  double shares = 0;
  for (const Row& row : blocks[0].slots()) {
    const prefork::SlotSnapshot& s = counted->slots.at(std::stoul(row.at("SLOT")));
    BOOST_TEST(row.at("ACCEPTED") == std::to_string(s.counters.connections_total));
    shares += number(row.at("SHARE%")).value_or(-1000);
  }
  BOOST_TEST(std::abs(shares - 100) < 0.5, top.out);
  BOOST_TEST(blocks[0].total().at("ACCEPTED") == std::to_string(connections));
}

// One connection to a pool of two: one worker has accepted it, the other
// none, and max/min is no ratio yet (it was "inf").
BOOST_AUTO_TEST_CASE(prefork_top_shows_no_accept_share_until_every_worker_accepted) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST_REQUIRE(client.request_frame("one") == "ONE");
  const auto counted = server.when([](const prefork::ScoreboardSnapshot& s) {
    return s.totals.connections_total == 1 && s.totals.requests == 1;
  });
  BOOST_TEST_REQUIRE(counted.has_value());

  Finished top = run_to_end(bin_path("prefork-top"), {"--once", server.stats_name()});
  BOOST_TEST_REQUIRE(status_or_running(top.status) == 0, top.description);
  const std::vector<Block> blocks = blocks_of(top.out);
  BOOST_TEST_REQUIRE(blocks.size() == 1u, top.out);
  BOOST_TEST(blocks[0].after("max/min") == "-", top.out);
  BOOST_TEST(contains(top.out, "(1 has accepted none yet)"), top.out);
  // The shares themselves are still shown: 100% and 0%.
  std::vector<std::string> shares;
  for (const Row& row : blocks[0].slots()) shares.push_back(row.at("SHARE%"));
  std::sort(shares.begin(), shares.end());
  BOOST_TEST(shares == (std::vector<std::string>{"0.0", "100.0"}), top.out);
}

BOOST_AUTO_TEST_CASE(prefork_top_rates_survive_a_worker_replacement) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto client = TcpClient::connect(server.endpoint("framed"));
  for (int i = 0; i < 50; ++i) BOOST_TEST_REQUIRE(client.request_frame("x") == "X");
  const auto served =
      server.when([](const prefork::ScoreboardSnapshot& s) { return s.totals.requests == 50; });
  BOOST_TEST_REQUIRE(served.has_value());
  const auto busiest = std::max_element(
      served->slots.begin(), served->slots.end(),
      [](const auto& a, const auto& b) { return a.counters.requests < b.counters.requests; });
  const unsigned slot = busiest->slot;
  const pid_t victim = busiest->pid;
  client.close();

  std::string replacement;
  const std::vector<Block> blocks = watch(
      server.stats_name(),
      [&](const std::vector<Block>& b) {
        // Two refreshes of the new worker: one across the change, one after.
        return std::count_if(b.begin(), b.end(), [&](const Block& block) {
                 const std::string pid = block.slots().at(slot).at("PID");
                 return pid != "-" && pid != std::to_string(victim);
               }) >= 2;
      },
      [&] { ::kill(victim, SIGKILL); });
  for (std::size_t i = 1; i < blocks.size(); ++i)
    for (const Row& row : blocks[i].slots())
      if (row.at("PID") != "-")  // a live worker, new or old, has a rate
        BOOST_TEST(number(row.at("REQ/S")).value_or(-1) >= 0, blocks_text({blocks[i]}));
  BOOST_TEST(contains(blocks_text(blocks), "signaled 1"), blocks_text(blocks));
}

BOOST_AUTO_TEST_CASE(prefork_top_says_when_the_server_stops) {
  // The table says it on stdout; JSON lines say it on stderr, so that stdout
  // stays one document per line.
  for (const bool as_json : {false, true}) {
    BOOST_TEST_CONTEXT((as_json ? "--json" : "table")) {
      UpperServer server({"--framed", "127.0.0.1:0"});
      std::vector<std::string> args{"--interval", "0.2", server.stats_name()};
      if (as_json) args.insert(args.begin(), "--json");
      ServerProcess top(bin_path("prefork-top"), args);
      // It has read the scoreboard once before the server goes.
      BOOST_TEST_REQUIRE(wait_until(
                             [&] {
                               const std::string out = top.stdout_text();
                               return as_json ? contains(out, "\n") : !complete_blocks(out).empty();
                             },
                             state_timeout),
                         top.describe());
      server.process().signal(SIGTERM);
      BOOST_TEST(status_or_running(server.process().wait_exit(state_timeout)) == 0);
      BOOST_TEST_REQUIRE(status_or_running(top.wait_exit(state_timeout)) == 0, top.describe());
      const std::string out = top.stdout_text(1'000ms);
      if (as_json) {
        BOOST_TEST(contains(out, "\"name\":\"" + server.stats_name() + "\""), out);
        BOOST_TEST(top.stderr_text() == "prefork-top: server stopped\n", top.describe());
      } else {
        BOOST_TEST(out.ends_with("\nserver stopped\n"), out);
      }
    }
  }
}

// A SIGTERM ends the wait between two refreshes, however long the interval.
BOOST_AUTO_TEST_CASE(prefork_top_stops_on_sigterm_between_refreshes) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  ServerProcess top(bin_path("prefork-top"), {"--interval", "600", server.stats_name()});
  // Its first block is printed: it handles SIGTERM by then.
  BOOST_TEST_REQUIRE(
      wait_until([&] { return !complete_blocks(top.stdout_text()).empty(); }, state_timeout),
      top.describe());
  top.signal(SIGTERM);
  BOOST_TEST(status_or_running(top.wait_exit(state_timeout)) == 0, top.describe());
  BOOST_TEST(complete_blocks(top.stdout_text(1'000ms)).size() == 1u, top.describe());
}

BOOST_AUTO_TEST_CASE(prefork_top_live_view_redraws_in_place_and_quits_on_q) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  PtyProcess top({"--interval", "0.2", server.stats_name()}, 132, 40);
  // Two frames, each from the top left of a screen cleared once.
  BOOST_TEST_REQUIRE(top.wait_for([](const std::string& out) {
    return frames_after(out, 0).size() >= 2 && contains(out, " SLOT");
  }),
                     top.describe());
  BOOST_TEST(top.output().starts_with(hide_cursor), top.describe());
  BOOST_TEST(count_of(top.output(), clear_screen) == 1u, top.describe());
  const termios running = top.modes();
  BOOST_TEST((running.c_lflag & ICANON) == 0u, "still canonical");
  BOOST_TEST((running.c_lflag & ECHO) == 0u, "still echoing");
  BOOST_TEST((running.c_lflag & ISIG) != 0u, "Ctrl-C must still stop it");
  const std::vector<std::string> wide = screen_lines(frames_after(top.output(), 0).front());
  BOOST_TEST(std::any_of(wide.begin(), wide.end(),
                         [](const std::string& l) { return contains(l, "HB-AGE"); }),
             top.describe());

  // A narrower window: the next frames are cleared and cut to fit.
  const std::size_t resized_at = top.output().size();
  top.resize(60, 30);
  BOOST_TEST_REQUIRE(top.wait_for([&](const std::string& out) {
    for (const std::string& frame : frames_after(out, resized_at)) {
      if (!contains(frame, clear_screen)) continue;
      const std::vector<std::string> lines = screen_lines(frame);
      return std::all_of(lines.begin(), lines.end(),
                         [](const std::string& l) { return l.size() <= 60; }) &&
             std::any_of(lines.begin(), lines.end(),
                         [](const std::string& l) { return l.starts_with(" SLOT"); });
    }
    return false;
  }),
                     top.describe());

  const std::size_t quit_at = top.output().size();
  top.type("q");
  BOOST_TEST_REQUIRE(status_or_running(top.wait_exit()) == 0, top.describe());
  BOOST_TEST(contains(top.output().substr(quit_at), show_cursor), top.describe());
  BOOST_TEST(input_modes_as(top.modes(), top.initial_modes()), "terminal modes not restored");
}

BOOST_AUTO_TEST_CASE(prefork_top_live_view_restores_the_terminal_when_stopped) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  struct Way {
    const char* name;
    std::function<void(PtyProcess&)> stop;
  };
  const Way ways[] = {{"Ctrl-C", [](PtyProcess& p) { p.type("\x03"); }},
                      {"SIGTERM", [](PtyProcess& p) { p.signal(SIGTERM); }},
                      {"SIGHUP", [](PtyProcess& p) { p.signal(SIGHUP); }}};
  for (const Way& way : ways) {
    BOOST_TEST_CONTEXT(way.name) {
      PtyProcess top({"--interval", "0.2", server.stats_name()}, 132, 40);
      BOOST_TEST_REQUIRE(
          top.wait_for([](const std::string& out) { return frames_after(out, 0).size() >= 1; }),
          top.describe());
      BOOST_TEST_REQUIRE(!input_modes_as(top.modes(), top.initial_modes()));
      const std::size_t stop_at = top.output().size();
      way.stop(top);
      BOOST_TEST(status_or_running(top.wait_exit()) == 0, top.describe());
      BOOST_TEST(contains(top.output().substr(stop_at), show_cursor), top.describe());
      BOOST_TEST(input_modes_as(top.modes(), top.initial_modes()), "terminal modes not restored");
    }
  }
}

BOOST_AUTO_TEST_CASE(prefork_top_prints_the_metrics_exposition) {
  UpperServer server({"--framed", "127.0.0.1:0"});
  auto starts_with_metadata = [](const std::string& text) {
    return text.starts_with("# TYPE") || text.starts_with("# HELP");
  };
  Finished open_metrics =
      run_to_end(bin_path("prefork-top"), {"--prometheus", "--once", server.stats_name()});
  BOOST_TEST_CONTEXT(open_metrics.description) {
    BOOST_TEST(status_or_running(open_metrics.status) == 0);
    BOOST_TEST(starts_with_metadata(open_metrics.out));
    BOOST_TEST(open_metrics.out.ends_with("# EOF\n"));
    BOOST_TEST(count_of(open_metrics.out, "# EOF") == 1u);
  }
  Finished text =
      run_to_end(bin_path("prefork-top"), {"--prometheus=text", "--once", server.stats_name()});
  BOOST_TEST_CONTEXT(text.description) {
    BOOST_TEST(status_or_running(text.status) == 0);
    BOOST_TEST(starts_with_metadata(text.out));
    BOOST_TEST(!contains(text.out, "# EOF"));
  }
  // Without --once: one exposition per refresh.
  ServerProcess repeated(bin_path("prefork-top"),
                         {"--prometheus", "--interval", "0.2", server.stats_name()});
  const bool twice =
      wait_until([&] { return count_of(repeated.stdout_text(), "# EOF\n") >= 2; }, state_timeout);
  repeated.signal(SIGTERM);
  BOOST_TEST(status_or_running(repeated.wait_exit(state_timeout)) == 0, repeated.describe());
  BOOST_TEST(twice, repeated.describe());
}

BOOST_AUTO_TEST_CASE(generic_worker_host_serves_through_the_plugin,
                     *utf::precondition(only_in_spawn_mode)) {
  const std::string plugin = upper_plugin_path();
  UpperServer server({"--framed", "127.0.0.1:0", "--udp", "[::1]:0", "--worker-exe",
                      bin_path("prefork-worker"), "--", "--plugin", plugin});
  for (pid_t worker : worker_pids(server.ready_snapshot()))
    BOOST_TEST(std::filesystem::path(executable_of(worker)).filename() == "prefork-worker");
  auto tcp = TcpClient::connect(server.endpoint("framed"));
  BOOST_TEST(tcp.request_frame("from a plugin") == "FROM A PLUGIN");
  auto udp = UdpClient::connect(server.endpoint("udp", true));
  BOOST_TEST(udp.request("datagram") == "DATAGRAM");
  BOOST_TEST(server.requests_when_at_least(2) == 2u);
}

BOOST_AUTO_TEST_CASE(python_clients_get_upper_cased_replies,
                     *utf::precondition(python_clients_available)) {
  UpperServer server({"--tcp", "127.0.0.1:0", "--framed", "127.0.0.1:0", "--udp", "127.0.0.1:0",
                      "--max-frame", "1024"});
  auto port = [&](const char* protocol) { return std::to_string(server.endpoint(protocol).port); };
  struct Case {
    std::string script, protocol;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases{
      {"udp_client.py", "udp", {}},
      {"tcp_client.py", "tcp", {}},
      {"framed_client.py", "framed", {}},
      {"framed_client.py", "framed", {"--byte-by-byte", "--delay-ms", "0"}},
      {"framed_client.py", "framed", {"--sticky"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args{client_script(c.script), "--host", "127.0.0.1", "--port",
                                  port(c.protocol.c_str())};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    args.insert(args.end(), {"hello", "world"});
    Finished run = run_to_end("python3", args);
    BOOST_TEST_CONTEXT(run.description) {
      BOOST_TEST(status_or_running(run.status) == 0);
      BOOST_TEST(run.out.find("HELLO") != std::string::npos);
      BOOST_TEST(run.out.find("WORLD") != std::string::npos);
    }
  }
  // The refusal of an oversized frame, as the client reports it.
  Finished refused =
      run_to_end("python3", {client_script("framed_client.py"), "--host", "127.0.0.1", "--port",
                             port("framed"), "--raw-length", "2000"});
  BOOST_TEST(refused.out.find("closed") != std::string::npos, refused.description);
}
