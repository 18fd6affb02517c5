// The event loop's timer lists (workers/src/timer_list.hpp): deadlines in
// arming order, re-arming moves a node behind the others, cancelling and
// destruction unlink, a zero duration arms nothing.
#define BOOST_TEST_MODULE unit_timer_list
#include <boost/test/unit_test.hpp>

#include "timer_list.hpp"

#include <vector>

using prefork::TimerList;
using prefork::TimerNode;
using namespace std::chrono_literals;

namespace {

using Clock = TimerList::Clock;
const Clock::time_point t0 = Clock::time_point() + 1000s;

std::vector<TimerNode*> expired(TimerList& list, Clock::time_point now) {
  std::vector<TimerNode*> out;
  while (TimerNode* node = list.pop_expired(now)) out.push_back(node);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(expire_in_deadline_order) {
  TimerList list(100ms);
  TimerNode a, b, c;
  list.arm(a, t0);
  list.arm(b, t0 + 10ms);
  list.arm(c, t0 + 20ms);
  BOOST_TEST(list.first() == &a);
  BOOST_TEST((a.deadline == t0 + 100ms));
  BOOST_TEST(expired(list, t0 + 99ms).empty());
  BOOST_TEST((expired(list, t0 + 110ms) == std::vector<TimerNode*>{&a, &b}));
  BOOST_TEST(!a.armed());
  BOOST_TEST(c.armed());
  BOOST_TEST(list.first() == &c);
  BOOST_TEST((expired(list, t0 + 1s) == std::vector<TimerNode*>{&c}));
  BOOST_TEST(list.empty());
  BOOST_TEST(list.first() == nullptr);
}

BOOST_AUTO_TEST_CASE(rearming_moves_a_node_behind_the_others) {
  TimerList list(100ms);
  TimerNode a, b;
  list.arm(a, t0);
  list.arm(b, t0);
  list.arm(a, t0 + 50ms);  // activity: due later
  BOOST_TEST(list.first() == &b);
  BOOST_TEST((expired(list, t0 + 100ms) == std::vector<TimerNode*>{&b}));
  BOOST_TEST((expired(list, t0 + 150ms) == std::vector<TimerNode*>{&a}));
}

BOOST_AUTO_TEST_CASE(a_node_moves_between_lists) {
  TimerList idle(100ms), read(50ms);
  TimerNode a;
  idle.arm(a, t0);
  read.arm(a, t0);  // what it waits for changed
  BOOST_TEST(idle.empty());
  BOOST_TEST(read.first() == &a);
}

BOOST_AUTO_TEST_CASE(cancel_and_destruction_unlink) {
  TimerList list(100ms);
  TimerNode a, c;
  list.arm(a, t0);
  {
    TimerNode b;
    list.arm(b, t0);
    list.arm(c, t0);
    a.cancel();
    a.cancel();  // twice is harmless
  }
  BOOST_TEST(list.first() == &c);
  BOOST_TEST((expired(list, t0 + 1s) == std::vector<TimerNode*>{&c}));
}

BOOST_AUTO_TEST_CASE(a_zero_duration_arms_nothing) {
  TimerList off(0ms), on(100ms);
  TimerNode a;
  on.arm(a, t0);
  off.arm(a, t0);  // disarms it from `on` too
  BOOST_TEST(!a.armed());
  BOOST_TEST(on.empty());
  BOOST_TEST(off.empty());
}

BOOST_AUTO_TEST_CASE(nodes_outlive_their_list_disarmed) {
  TimerNode a;
  {
    TimerList list(100ms);
    list.arm(a, t0);
  }
  BOOST_TEST(!a.armed());
}

BOOST_AUTO_TEST_CASE(the_lazy_slack_is_a_sixteenth_at_most_300_ms) {
  BOOST_TEST((TimerList(160ms).slack() == 10ms));
  BOOST_TEST((TimerList(75'000ms).slack() == 300ms));
  BOOST_TEST((TimerList(0ms).slack() == 0ms));
}
