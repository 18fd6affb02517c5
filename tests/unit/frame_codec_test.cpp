#define BOOST_TEST_MODULE frame_codec
#include <boost/test/unit_test.hpp>

#include <prefork/codec.hpp>
#include <prefork/frame_codec.hpp>

#include <string>
#include <vector>

using Status = prefork::Decoded::Status;

namespace {

// The clients' frames (frame_codec.hpp) as the servers read them: a
// 4-byte big-endian LengthPrefixCodec, `max_frame` the message limit.
struct FrameDecoder {
  explicit FrameDecoder(std::size_t max_frame) : max(max_frame) {}
  prefork::Decoded next(std::string_view input) const { return codec.decode(input, max); }
  prefork::LengthPrefixCodec codec;
  std::size_t max;
};

// Feeds `stream` to a decoder in pieces cut at `cuts`, keeping the unconsumed
// tail as a worker does, and returns the payloads in order.
std::vector<std::string> decode_in_pieces(const std::string& stream, std::vector<std::size_t> cuts,
                                          std::size_t max_frame = 1 << 20) {
  FrameDecoder decoder(max_frame);
  std::vector<std::string> frames;
  std::string pending;
  std::size_t from = 0;
  cuts.push_back(stream.size());
  for (std::size_t cut : cuts) {
    pending += stream.substr(from, cut - from);
    from = cut;
    for (;;) {
      auto result = decoder.next(pending);
      BOOST_REQUIRE((result.status != Status::too_large));
      if (result.status == Status::need_more) break;
      frames.emplace_back(result.message);
      pending.erase(0, result.consumed);
    }
  }
  BOOST_TEST(pending.empty());
  return frames;
}

}  // namespace

BOOST_AUTO_TEST_CASE(header_is_big_endian) {
  char header[4];
  prefork::write_frame_header(0x01020304, header);
  BOOST_TEST(header[0] == 1);
  BOOST_TEST(header[3] == 4);
  BOOST_TEST(prefork::read_frame_header(header) == 0x01020304u);
  prefork::write_frame_header(0xFFFFFFFF, header);
  BOOST_TEST(prefork::read_frame_header(header) == 0xFFFFFFFFu);
}

BOOST_AUTO_TEST_CASE(encode_puts_length_before_payload) {
  std::string frame = prefork::encode_frame("hello");
  BOOST_TEST(frame.size() == 9u);
  BOOST_TEST(frame.substr(0, 4) == std::string("\0\0\0\5", 4));
  BOOST_TEST(frame.substr(4) == "hello");
}

BOOST_AUTO_TEST_CASE(split_at_every_byte) {
  const std::string stream = prefork::encode_frame("hello") + prefork::encode_frame("world!");
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    auto frames = decode_in_pieces(stream, {cut});
    BOOST_TEST_REQUIRE(frames.size() == 2u, "cut at " << cut);
    BOOST_TEST(frames[0] == "hello");
    BOOST_TEST(frames[1] == "world!");
  }
}

BOOST_AUTO_TEST_CASE(one_byte_at_a_time) {
  const std::string stream = prefork::encode_frame("abc") + prefork::encode_frame("") +
                             prefork::encode_frame(std::string(300, 'x'));
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  auto frames = decode_in_pieces(stream, cuts);
  BOOST_TEST_REQUIRE(frames.size() == 3u);
  BOOST_TEST(frames[0] == "abc");
  BOOST_TEST(frames[1].empty());
  BOOST_TEST(frames[2] == std::string(300, 'x'));
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_read) {
  std::string stream;
  for (int i = 0; i < 1000; ++i) stream += prefork::encode_frame("frame " + std::to_string(i));
  auto frames = decode_in_pieces(stream, {});
  BOOST_TEST_REQUIRE(frames.size() == 1000u);
  BOOST_TEST(frames[999] == "frame 999");
}

BOOST_AUTO_TEST_CASE(zero_length_frame_is_a_frame) {
  FrameDecoder decoder(16);
  auto result = decoder.next(prefork::encode_frame(""));
  BOOST_TEST((result.status == Status::message));
  BOOST_TEST(result.message.empty());
  BOOST_TEST(result.consumed == 4u);
}

BOOST_AUTO_TEST_CASE(limit_is_inclusive_and_checked_from_the_header_alone) {
  FrameDecoder decoder(8);
  BOOST_TEST((decoder.next(prefork::encode_frame("12345678")).status == Status::message));
  // Oversized is known from the 4 header bytes, before any payload arrives.
  std::string header = prefork::encode_frame("123456789").substr(0, 4);
  BOOST_TEST((decoder.next(header).status == Status::too_large));
  char huge[4];
  prefork::write_frame_header(0xFFFFFFFF, huge);
  BOOST_TEST((decoder.next(std::string_view(huge, 4)).status == Status::too_large));
}

BOOST_AUTO_TEST_CASE(short_header_needs_more) {
  FrameDecoder decoder(8);
  for (std::size_t n = 0; n < 4; ++n)
    BOOST_TEST((decoder.next(std::string(n, '\0')).status == Status::need_more));
}
