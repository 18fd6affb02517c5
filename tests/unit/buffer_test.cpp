// The worker's I/O buffer (workers/src/buffer.hpp): growth stops doubling
// at its limit, and memory is given back after a burst.
#define BOOST_TEST_MODULE unit_buffer
#include <boost/test/unit_test.hpp>

#include "buffer.hpp"

#include <string>

using prefork::Buffer;

BOOST_AUTO_TEST_CASE(the_first_allocation_is_what_was_asked) {
  Buffer b;
  b.append(std::string_view("abc"));
  BOOST_TEST(b.capacity() == 3u);
  BOOST_TEST(b.view() == "abc");
}

BOOST_AUTO_TEST_CASE(growth_doubles_up_to_the_limit_then_takes_only_what_is_needed) {
  Buffer b;
  b.limit_growth(1000);
  b.append(std::string(300, 'a'));
  b.append(std::string(10, 'b'));
  BOOST_TEST(b.capacity() == 600u);  // doubled
  b.append(std::string(300, 'c'));
  BOOST_TEST(b.capacity() == 1000u);  // doubling stops at the limit
  b.append(std::string(500, 'd'));
  BOOST_TEST(b.capacity() == 1110u);  // past it: exactly what is needed
  BOOST_TEST(b.size() == 1110u);
  BOOST_TEST(b.view().substr(300, 10) == std::string(10, 'b'));
  BOOST_TEST(b.view().substr(1109) == "d");
}

BOOST_AUTO_TEST_CASE(room_is_what_fits_without_growing) {
  Buffer b;
  BOOST_TEST(b.room() == 0u);
  b.prepare(100);
  BOOST_TEST(b.room() == 100u);
  b.commit(40);
  BOOST_TEST(b.room() == 60u);
  // As pointers (Boost.Test compares two char pointers as C strings).
  BOOST_TEST(static_cast<const void*>(b.end()) == static_cast<const void*>(b.data() + 40));
}

BOOST_AUTO_TEST_CASE(an_empty_buffer_past_what_is_kept_is_freed) {
  Buffer b;
  b.append(std::string(5000, 'x'));
  b.consume(5000);
  BOOST_TEST(b.shrinkable(4096));
  b.shrink(4096);
  BOOST_TEST(b.capacity() == 0u);
  b.append(std::string(100, 'y'));
  b.consume(100);
  b.shrink(4096);
  BOOST_TEST(b.capacity() == 100u);  // small: kept
  b.shrink(0);
  BOOST_TEST(b.capacity() == 0u);
}

BOOST_AUTO_TEST_CASE(a_mostly_unused_buffer_shrinks_to_what_it_holds) {
  Buffer b;
  b.append(std::string(1000, 'x'));
  b.append(std::string_view("tail"));
  b.consume(1000);
  b.shrink(0);
  BOOST_TEST(b.capacity() == 4u);
  BOOST_TEST(b.view() == "tail");
  // A buffer still mostly in use stays.
  b.append(std::string(4, 'z'));
  const std::size_t capacity = b.capacity();
  BOOST_TEST(!b.shrinkable(0));
  b.shrink(0);
  BOOST_TEST(b.capacity() == capacity);
  BOOST_TEST(b.view() == "tailzzzz");
}
