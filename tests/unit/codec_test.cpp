// The shipped codecs on their own (codec.hpp): the length prefix in every
// width and byte order, lines in LF and CRLF, raw chunks; the limit on a
// message, answered as soon as it is certain; and, for each of them, the
// same messages however the stream is split or merged (TCP's "sticky
// packets"). A codec of the test's own shows the interface is enough for an
// embedder's framing.
#define BOOST_TEST_MODULE codec
#include <boost/test/unit_test.hpp>

#include <prefork/codec.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using prefork::Codec;
using prefork::Decoded;
using prefork::LengthPrefixCodec;
using prefork::LineCodec;
using prefork::RawCodec;
using Status = prefork::Decoded::Status;
using Endian = prefork::LengthPrefixCodec::Endian;
using namespace std::string_literals;

namespace {

constexpr std::size_t no_limit = std::numeric_limits<std::size_t>::max();

// One message framed as the runtime frames a reply: header, payload, trailer.
std::string frame(const Codec& codec, std::string_view payload) {
  std::string out(codec.header_size(), '\0');
  codec.write_header(payload.size(), out.data());
  out += payload;
  out += codec.trailer();
  return out;
}

std::string frames(const Codec& codec, const std::vector<std::string>& payloads) {
  std::string out;
  for (const auto& payload : payloads) out += frame(codec, payload);
  return out;
}

// What a connection's runtime does with the codec: buffers what arrives,
// takes every whole message at the front, keeps the rest for the next read.
struct Fed {
  std::vector<std::string> messages;
  bool too_large = false;
  std::string left;  // bytes not consumed (an unfinished message)
};

Fed feed(const Codec& codec, const std::vector<std::string_view>& chunks, std::size_t limit) {
  Fed fed;
  for (std::string_view chunk : chunks) {
    fed.left += chunk;
    while (!fed.left.empty()) {
      const Decoded decoded = codec.decode(fed.left, limit);
      if (decoded.status == Status::too_large) {
        fed.too_large = true;
        return fed;
      }
      if (decoded.status == Status::need_more) break;
      BOOST_TEST_REQUIRE(decoded.consumed > 0u);
      BOOST_TEST_REQUIRE(decoded.consumed <= fed.left.size());
      // The message lies within the bytes consumed (compared as addresses:
      // Boost.Test would compare char pointers as strings).
      const bool within = std::less_equal<>()(fed.left.data(), decoded.message.data()) &&
                          std::less_equal<>()(decoded.message.data() + decoded.message.size(),
                                              fed.left.data() + decoded.consumed);
      BOOST_TEST_REQUIRE(within);
      fed.messages.emplace_back(decoded.message);
      fed.left.erase(0, decoded.consumed);
    }
  }
  return fed;
}

// The stream fed whole, split in two at every position, and one byte at a
// time: each way must give `expected`, with nothing left over.
void check_every_split(const Codec& codec, std::string_view stream,
                       const std::vector<std::string>& expected, std::size_t limit = no_limit) {
  {
    Fed whole = feed(codec, {stream}, limit);
    BOOST_TEST(!whole.too_large);
    BOOST_TEST(whole.messages == expected, "merged in one input");
    BOOST_TEST(whole.left.empty());
  }
  for (std::size_t at = 1; at < stream.size(); ++at) {
    Fed split = feed(codec, {stream.substr(0, at), stream.substr(at)}, limit);
    BOOST_TEST_REQUIRE(!split.too_large, "split at " << at);
    BOOST_TEST_REQUIRE(split.messages == expected, "split at " << at);
    BOOST_TEST_REQUIRE(split.left.empty(), "split at " << at);
  }
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
  Fed trickle = feed(codec, bytes, limit);
  BOOST_TEST(!trickle.too_large);
  BOOST_TEST(trickle.messages == expected, "one byte at a time");
  BOOST_TEST(trickle.left.empty());
}

Status status(const Codec& codec, std::string_view input, std::size_t limit) {
  return codec.decode(input, limit).status;
}

std::string bytes(std::initializer_list<unsigned char> values) {
  std::string out;
  for (unsigned char v : values) out.push_back(static_cast<char>(v));
  return out;
}

// "aaa...": a payload of n bytes.
std::string payload(std::size_t n, char c = 'a') { return std::string(n, c); }

}  // namespace

// ---- LengthPrefixCodec ----------------------------------------------------

BOOST_AUTO_TEST_CASE(length_prefix_defaults_to_four_bytes_big_endian) {
  LengthPrefixCodec codec;
  BOOST_TEST(codec.width() == 4u);
  BOOST_TEST((codec.endian() == Endian::big));
  BOOST_TEST(codec.header_size() == 4u);
  BOOST_TEST(codec.overhead() == 4u);
  BOOST_TEST(codec.trailer().empty());
  BOOST_TEST(frame(codec, "hi") == bytes({0, 0, 0, 2, 'h', 'i'}));
}

BOOST_AUTO_TEST_CASE(length_prefix_refuses_other_widths) {
  for (unsigned width : {0u, 3u, 5u, 7u, 16u})
    BOOST_CHECK_THROW(LengthPrefixCodec(width, Endian::big), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(length_prefix_header_bytes_in_each_width_and_order) {
  // A length whose bytes all differ, so that their order is visible.
  struct Case {
    unsigned width;
    std::uint64_t length;
    std::string big, little;
  };
  const std::vector<Case> cases = {
      {1, 0x01, bytes({0x01}), bytes({0x01})},
      {2, 0x0102, bytes({0x01, 0x02}), bytes({0x02, 0x01})},
      {4, 0x01020304, bytes({0x01, 0x02, 0x03, 0x04}), bytes({0x04, 0x03, 0x02, 0x01})},
      {8, 0x0102030405060708, bytes({1, 2, 3, 4, 5, 6, 7, 8}), bytes({8, 7, 6, 5, 4, 3, 2, 1})},
  };
  for (const auto& c : cases) {
    for (Endian endian : {Endian::big, Endian::little}) {
      LengthPrefixCodec codec(c.width, endian);
      BOOST_TEST(codec.header_size() == c.width);
      std::string header(c.width, '\0');
      codec.write_header(c.length, header.data());
      BOOST_TEST(header == (endian == Endian::big ? c.big : c.little), "width " << c.width);
      // The header alone: more is announced than is there.
      BOOST_TEST((status(codec, header, no_limit) == Status::need_more), "width " << c.width);
      // Read back as the same length: one byte short of the limit it needs
      // is too large, at the limit it waits for the payload.
      BOOST_TEST((status(codec, header, c.length - 1) == Status::too_large), "width " << c.width);
      BOOST_TEST((status(codec, header, c.length) == Status::need_more), "width " << c.width);
    }
  }
}

BOOST_AUTO_TEST_CASE(length_prefix_round_trips_in_each_width_and_order) {
  const std::vector<std::string> payloads = {"", "x", "hello", payload(200, 'q'),
                                             payload(255, 'r')};
  for (unsigned width : {1u, 2u, 4u, 8u}) {
    for (Endian endian : {Endian::big, Endian::little}) {
      LengthPrefixCodec codec(width, endian);
      for (const auto& p : payloads) {
        const std::string framed = frame(codec, p);
        BOOST_TEST_REQUIRE(framed.size() == width + p.size());
        const Decoded decoded = codec.decode(framed, 255);
        BOOST_TEST_REQUIRE((decoded.status == Status::message), "width " << width);
        BOOST_TEST(decoded.message == p);
        BOOST_TEST(decoded.consumed == framed.size());
        // Short by one byte (header or payload): not yet.
        BOOST_TEST((status(codec, std::string_view(framed).substr(0, framed.size() - 1), 255) ==
                    Status::need_more));
      }
      check_every_split(codec, frames(codec, payloads), payloads, 255);
    }
  }
}

BOOST_AUTO_TEST_CASE(length_prefix_wider_payloads_round_trip) {
  // Lengths with more than one significant byte, both orders.
  for (unsigned width : {2u, 4u, 8u}) {
    for (Endian endian : {Endian::big, Endian::little}) {
      LengthPrefixCodec codec(width, endian);
      for (std::size_t size : {256u, 257u, 1000u, 65535u}) {
        const std::string p = payload(size, 'w');
        const std::string framed = frame(codec, p) + "next";
        const Decoded decoded = codec.decode(framed, 65535);
        BOOST_TEST_REQUIRE((decoded.status == Status::message), "width " << width);
        BOOST_TEST(decoded.message.size() == size);
        BOOST_TEST(decoded.consumed == width + size);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(length_prefix_refuses_from_the_header_alone) {
  for (unsigned width : {1u, 2u, 4u, 8u}) {
    for (Endian endian : {Endian::big, Endian::little}) {
      LengthPrefixCodec codec(width, endian);
      std::string header(width, '\0');
      codec.write_header(101, header.data());
      // No payload byte yet: the limit already says no.
      BOOST_TEST((status(codec, header, 100) == Status::too_large), "width " << width);
      BOOST_TEST((status(codec, header, 101) == Status::need_more), "width " << width);
      // A header not yet whole is never judged.
      if (width > 1)
        BOOST_TEST((status(codec, header.substr(0, width - 1), 0) == Status::need_more));
      // The exact limit is a message.
      const std::string exact = frame(codec, payload(101));
      BOOST_TEST((status(codec, exact, 101) == Status::message), "width " << width);
      BOOST_TEST((status(codec, exact, 100) == Status::too_large), "width " << width);
    }
  }
  // The largest 8-byte length is refused, not wrapped around.
  LengthPrefixCodec eight(8, Endian::big);
  const std::string huge(8, '\xff');
  BOOST_TEST((status(eight, huge + "abc", no_limit - 1) == Status::too_large));
}

BOOST_AUTO_TEST_CASE(length_prefix_reply_too_big_for_its_header_throws) {
  struct Case {
    unsigned width;
    std::uint64_t largest;  // the largest payload the header can carry
  };
  for (const Case c : {Case{1, 0xff}, Case{2, 0xffff}, Case{4, 0xffffffff}}) {
    for (Endian endian : {Endian::big, Endian::little}) {
      LengthPrefixCodec codec(c.width, endian);
      std::string header(c.width, '\0');
      BOOST_CHECK_NO_THROW(codec.write_header(c.largest, header.data()));
      BOOST_TEST(header == std::string(c.width, '\xff'));
      BOOST_CHECK_THROW(codec.write_header(c.largest + 1, header.data()), std::length_error);
      BOOST_CHECK_THROW(codec.write_header(std::numeric_limits<std::size_t>::max(), header.data()),
                        std::length_error);
    }
  }
  // Eight bytes describe any size.
  LengthPrefixCodec eight(8, Endian::little);
  std::string header(8, '\0');
  BOOST_CHECK_NO_THROW(eight.write_header(std::numeric_limits<std::size_t>::max(), header.data()));
  BOOST_TEST(header == std::string(8, '\xff'));
}

// ---- LineCodec ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(line_lf_and_crlf) {
  LineCodec codec;
  Decoded lf = codec.decode("abc\nrest", 100);
  BOOST_TEST_REQUIRE((lf.status == Status::message));
  BOOST_TEST(lf.message == "abc");
  BOOST_TEST(lf.consumed == 4u);
  Decoded crlf = codec.decode("abc\r\nrest", 100);
  BOOST_TEST_REQUIRE((crlf.status == Status::message));
  BOOST_TEST(crlf.message == "abc");
  BOOST_TEST(crlf.consumed == 5u);
  // Not yet ended, even after its CR.
  BOOST_TEST((status(codec, "abc", 100) == Status::need_more));
  BOOST_TEST((status(codec, "abc\r", 100) == Status::need_more));
}

BOOST_AUTO_TEST_CASE(line_empty_lines_are_messages) {
  LineCodec codec;
  Decoded lf = codec.decode("\nx", 100);
  BOOST_TEST_REQUIRE((lf.status == Status::message));
  BOOST_TEST(lf.message.empty());
  BOOST_TEST(lf.consumed == 1u);
  Decoded crlf = codec.decode("\r\n", 100);
  BOOST_TEST_REQUIRE((crlf.status == Status::message));
  BOOST_TEST(crlf.message.empty());
  BOOST_TEST(crlf.consumed == 2u);
  // Even with no room at all for a line's content.
  BOOST_TEST((status(codec, "\n", 0) == Status::message));
  BOOST_TEST((status(codec, "\r\n", 0) == Status::message));
  BOOST_TEST((status(codec, "a\n", 0) == Status::too_large));
}

BOOST_AUTO_TEST_CASE(line_cr_in_the_middle_stays) {
  LineCodec codec;
  Decoded decoded = codec.decode("a\rb\r\r\n", 100);
  BOOST_TEST_REQUIRE((decoded.status == Status::message));
  BOOST_TEST(decoded.message == "a\rb\r");  // only the CR right before the LF goes
  BOOST_TEST(decoded.consumed == 6u);
  Decoded leading = codec.decode("\rx\n", 100);
  BOOST_TEST_REQUIRE((leading.status == Status::message));
  BOOST_TEST(leading.message == "\rx");
}

BOOST_AUTO_TEST_CASE(line_of_exactly_the_limit_is_accepted_and_one_more_refused) {
  constexpr std::size_t limit = 16;
  LineCodec codec;
  const std::string exact = payload(limit);
  const std::string over = payload(limit + 1);
  for (std::string_view ending : {"\n", "\r\n"}) {
    std::string line = exact;
    line += ending;
    // Followed by more input, so that the codec cannot look at the end.
    const std::string input = line + "next line\n";
    Decoded decoded = codec.decode(input, limit);
    BOOST_TEST_REQUIRE((decoded.status == Status::message), "ending size " << ending.size());
    BOOST_TEST(decoded.message == exact);
    BOOST_TEST(decoded.consumed == line.size());
    BOOST_TEST((status(codec, line, limit) == Status::message));
    std::string too_long = over;
    too_long += ending;
    BOOST_TEST((status(codec, too_long, limit) == Status::too_large),
               "ending size " << ending.size());
    BOOST_TEST((status(codec, too_long + "more\n", limit) == Status::too_large));
  }
  // A newline far beyond the limit does not rescue the line.
  BOOST_TEST((status(codec, payload(3 * limit) + "\n", limit) == Status::too_large));
}

BOOST_AUTO_TEST_CASE(line_without_newline_needs_more_until_past_the_limit) {
  constexpr std::size_t limit = 16;
  LineCodec codec;
  // Up to the limit, the line may still end in time.
  for (std::size_t n = 1; n <= limit; ++n)
    BOOST_TEST((status(codec, payload(n), limit) == Status::need_more), "size " << n);
  // limit + 1 bytes ending in CR: its LF may come next and make a line of
  // exactly the limit.
  std::string cr_last = payload(limit);
  cr_last += '\r';
  BOOST_TEST((status(codec, cr_last, limit) == Status::need_more));
  BOOST_TEST((status(codec, cr_last + "\n", limit) == Status::message));
  // Past limit + CR: certain, whatever follows.
  for (std::size_t n = limit + 2; n <= limit + 40; ++n)
    BOOST_TEST((status(codec, payload(n), limit) == Status::too_large), "size " << n);
  std::string cr_late = payload(limit + 1);
  cr_late += '\r';
  BOOST_TEST((status(codec, cr_late, limit) == Status::too_large));
}

BOOST_AUTO_TEST_CASE(line_reply_ending) {
  LineCodec lf;
  BOOST_TEST(lf.header_size() == 0u);
  BOOST_TEST(lf.trailer() == "\n");
  BOOST_TEST(lf.overhead() == 2u);  // a received line may end in CR LF
  BOOST_TEST(frame(lf, "ok") == "ok\n");
  LineCodec crlf("\r\n");
  BOOST_TEST(crlf.trailer() == "\r\n");
  BOOST_TEST(frame(crlf, "ok") == "ok\r\n");
  BOOST_TEST(frame(crlf, "") == "\r\n");
}

BOOST_AUTO_TEST_CASE(line_stream_split_anywhere) {
  LineCodec codec;
  std::string stream = "first\nsecond\r\n\n\r\nin\rside\r\n";
  stream += payload(16);
  stream += "\nlast\n";
  const std::vector<std::string> expected = {"first",    "second",    "",    "",
                                             "in\rside", payload(16), "last"};
  check_every_split(codec, stream, expected, 16);
  // The same lines as replies with either ending come back the same.
  for (const char* ending : {"\n", "\r\n"}) {
    LineCodec replies(ending);
    const std::vector<std::string> lines = {"a", "", "b c", payload(16)};
    check_every_split(codec, frames(replies, lines), lines, 16);
  }
}

BOOST_AUTO_TEST_CASE(line_stream_over_the_limit_is_refused_whichever_the_split) {
  LineCodec codec;
  std::string stream = "ok\n";
  stream += payload(17);
  stream += "\nnever\n";
  for (std::size_t at = 1; at < stream.size(); ++at) {
    Fed fed = feed(
        codec, {std::string_view(stream).substr(0, at), std::string_view(stream).substr(at)}, 16);
    BOOST_TEST_REQUIRE(fed.too_large, "split at " << at);
    BOOST_TEST_REQUIRE(fed.messages == std::vector<std::string>{"ok"}, "split at " << at);
  }
}

// ---- RawCodec -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(raw_each_input_is_one_message) {
  RawCodec codec;
  BOOST_TEST(codec.header_size() == 0u);
  BOOST_TEST(codec.trailer().empty());
  BOOST_TEST(codec.overhead() == 0u);
  BOOST_TEST(frame(codec, "as is\n") == "as is\n");
  const std::string input = "any\nbytes\0at all"s;
  Decoded decoded = codec.decode(input, 64);
  BOOST_TEST_REQUIRE((decoded.status == Status::message));
  BOOST_TEST(decoded.message == input);
  BOOST_TEST(decoded.consumed == input.size());
  // Over the limit: the first `limit` bytes, as recv(limit) would return.
  decoded = codec.decode(input, 4);
  BOOST_TEST_REQUIRE((decoded.status == Status::message));
  BOOST_TEST(decoded.message == "any\n");
  BOOST_TEST(decoded.consumed == 4u);
  BOOST_TEST((codec.decode(input, 0).status == Status::too_large));
}

BOOST_AUTO_TEST_CASE(raw_stream_split_anywhere) {
  // A raw message is whatever one read delivered: the messages are the
  // chunks themselves, and together they are the stream, byte for byte.
  RawCodec codec;
  const std::string stream = "one\ntwo\r\nthree";
  BOOST_TEST(feed(codec, {stream}, no_limit).messages == std::vector<std::string>{stream});
  for (std::size_t at = 1; at < stream.size(); ++at) {
    const std::string head = stream.substr(0, at), tail = stream.substr(at);
    Fed fed = feed(codec, {head, tail}, no_limit);
    BOOST_TEST_REQUIRE(fed.messages == (std::vector<std::string>{head, tail}), "split at " << at);
    BOOST_TEST_REQUIRE(fed.left.empty());
  }
  std::vector<std::string_view> single;
  std::vector<std::string> expected;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    single.push_back(std::string_view(stream).substr(i, 1));
    expected.push_back(stream.substr(i, 1));
  }
  BOOST_TEST(feed(codec, single, no_limit).messages == expected);
}

// ---- An embedder's own codec ----------------------------------------------

namespace {

// A made-up framing in a few lines: the length in four ASCII digits, the
// payload, then ';'. "0005hello;". Its replies are framed the same way.
class DecimalRecordCodec final : public Codec {
 public:
  Decoded decode(std::string_view input, std::size_t limit) const override {
    if (input.size() < 4) return Decoded::need_more();
    std::size_t length = 0;
    for (char digit : input.substr(0, 4)) {
      if (digit < '0' || digit > '9') return Decoded::too_large();  // not ours: refuse it
      length = length * 10 + static_cast<std::size_t>(digit - '0');
    }
    if (length > limit) return Decoded::too_large();
    if (input.size() < 4 + length + 1) return Decoded::need_more();
    if (input[4 + length] != ';') return Decoded::too_large();
    return Decoded::whole(input.substr(4, length), 4 + length + 1);
  }
  std::size_t header_size() const noexcept override { return 4; }
  void write_header(std::size_t size, char* header) const override {
    if (size > 9999) throw std::length_error("a record holds at most 9999 bytes");
    for (int i = 3; i >= 0; --i, size /= 10) header[i] = static_cast<char>('0' + size % 10);
  }
  std::string_view trailer() const noexcept override { return ";"; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(an_embedders_codec_through_the_same_interface) {
  DecimalRecordCodec codec;
  BOOST_TEST(codec.overhead() == 5u);  // the default: header + trailer
  BOOST_TEST(frame(codec, "hello") == "0005hello;");
  BOOST_TEST(frame(codec, "") == "0000;");
  BOOST_CHECK_THROW(frame(codec, payload(10000)), std::length_error);
  const std::vector<std::string> records = {"hello", "", "semi;colon", payload(42, 'z'), "0004"};
  check_every_split(codec, frames(codec, records), records, 100);
  BOOST_TEST((status(codec, "0101", 100) == Status::too_large));
  BOOST_TEST((status(codec, "0002ab!", 100) == Status::too_large));
}
