// md::FeedDecoder, the pipeline behind md decode / listen / bench: frames →
// reassembly or datagrams → framing → FAST records, on the shipped SSE
// templates with records from md::FeedGenerator. What is pinned down:
//   - STEP over TCP in order, shuffled within the reorder buffer, with
//     duplicates: every record equal to what was encoded, in order;
//   - a lost segment: the hole is declared after the gap timeout, decoding
//     resumes at the next STEP header, the messages lost are counted from
//     MsgSeqNum, and every record decoded is one that was sent, in order;
//   - pick-up mid-stream (no SYN): the partial STEP message is skipped;
//   - a STEP message with a bad checksum is refused and counted, the rest decoded;
//   - UDP datagrams with a sequence preamble, one lost: counted as missing;
//   - raw FAST and 4-byte length-prefixed files.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "mdfeed/feed.hpp"
#include "mdfeed/send.hpp"
#include "tests/bpf/packet_builder.hpp"
#include "tests/common/expect_ok.hpp"

namespace etcpipe::test {
namespace {

const std::string kTemplates = "testdata/mdfeed/sse.xml";
const std::string kSeries = "testdata/anova/osh_000001SZ_daily.txt";

struct Collect : md::RecordSink {
    std::vector<fast::Record> records;
    std::vector<uint64_t> seqs;
    std::vector<std::string> problems;
    void on_record(const fast::MessageView& m, const md::RecordContext& ctx) override {
        records.push_back(fast::to_record(m));
        seqs.push_back(ctx.seq);
    }
    void on_problem(const md::RecordContext&, const std::string& what) override { problems.push_back(what); }
};

class MdFeed : public ::testing::Test {
  protected:
    void SetUp() override {
        auto t = fast::TemplateSet::load(kTemplates);
        ASSERT_OK(t);
        set_.emplace(std::move(*t));
    }

    // `messages` STEP messages of `per` records each; records in sent, the
    // message each record is in in msg_of.
    std::vector<uint8_t> step_stream(size_t messages, size_t per) {
        auto gen = md::FeedGenerator::create(*set_, {3201, 5801}, kSeries, 5);
        EXPECT_TRUE(gen.ok());
        fast::Encoder enc(*set_);
        std::vector<uint8_t> out, fastb;
        for (size_t m = 0; m < messages; ++m) {
            enc.reset();
            fastb.clear();
            for (size_t k = 0; k < per; ++k) {
                fast::Record& r = gen->next();
                gen->stamp(r, 1000 + m);
                EXPECT_TRUE(enc.encode(r, fastb).ok());
                sent.push_back(r);
                msg_of.push_back(m + 1);
            }
            md::append_step(out, fastb, m + 1, "UA3201", "20261202-09:30:00.000");
        }
        return out;
    }

    static std::vector<uint8_t> tcp_frame(uint32_t seq, std::span<const uint8_t> payload,
                                          uint8_t flags = kTcpAck | kTcpPsh) {
        return PacketBuilder().eth().ipv4("10.79.0.1", "10.79.0.2").tcp(9000, 40000, flags, seq)
            .payload(std::vector<uint8_t>(payload.begin(), payload.end())).build();
    }

    // The stream cut into segments of `mss` bytes starting at seq `isn`.
    static std::vector<std::vector<uint8_t>> segments(const std::vector<uint8_t>& stream, size_t mss,
                                                      uint32_t isn) {
        std::vector<std::vector<uint8_t>> out;
        for (size_t off = 0; off < stream.size(); off += mss) {
            const size_t n = std::min(mss, stream.size() - off);
            out.push_back(tcp_frame(isn + static_cast<uint32_t>(off),
                                    std::span<const uint8_t>(stream).subspan(off, n)));
        }
        return out;
    }

    void expect_sent_in_order(const Collect& c) {
        ASSERT_EQ(c.records.size(), sent.size());
        for (size_t i = 0; i < sent.size(); ++i)
            ASSERT_EQ(c.records[i], sent[i]) << "record " << i << ": " << fast::to_string(c.records[i]);
    }

    std::optional<fast::TemplateSet> set_;
    std::vector<fast::Record> sent;
    std::vector<uint64_t> msg_of;
};

TEST_F(MdFeed, StepOverTcpInOrderShuffledAndDuplicated) {
    const auto stream = step_stream(200, 7);
    for (int variant = 0; variant < 3; ++variant) {
        auto segs = segments(stream, 536, 0xfffff000u);  // crosses 2^32
        if (variant >= 1) {
            std::mt19937_64 rng(variant);
            for (size_t i = 0; i + 4 < segs.size(); i += 4) std::shuffle(segs.begin() + i, segs.begin() + i + 4, rng);
        }
        if (variant == 2)
            for (size_t i = 0; i < segs.size(); i += 5) segs.insert(segs.begin() + i, segs[i]);
        Collect c;
        md::FeedDecoder feed(*set_, md::FeedOptions{}, c);
        feed.frame(tcp_frame(0xfffff000u - 1, {}, kTcpSyn), 1);
        for (const auto& s : segs) feed.frame(s, 2);
        feed.finish();
        SCOPED_TRACE("variant " + std::to_string(variant));
        expect_sent_in_order(c);
        EXPECT_TRUE(c.problems.empty()) << c.problems.front();
        EXPECT_EQ(feed.counters().step_messages, 200u);
        EXPECT_EQ(feed.counters().step_lost, 0u);
        if (variant == 2) {
            EXPECT_GT(feed.reassembly().duplicate_segments, 0u);
        }
    }
}

TEST_F(MdFeed, TcpServerFilterMatchesTheWholeAddressAndPort) {
    const auto stream = step_stream(10, 2);
    const auto segs = segments(stream, 500, 1);  // from 10.79.0.1:9000
    struct Case {
        std::string addr;
        uint16_t port;
        bool wanted;
    };
    for (const Case& k : {Case{"10.79.0.1", 9000, true}, Case{"10.79.0.12", 9000, false},
                          Case{"10.79.0.1", 900, false}, Case{"10.79.0.", 9000, false}}) {
        Collect c;
        md::FeedOptions fo;
        fo.tcp_servers = {{k.addr, k.port}};
        md::FeedDecoder feed(*set_, fo, c);
        for (const auto& f : segs) feed.frame(f, 1);
        feed.finish();
        SCOPED_TRACE(k.addr + ":" + std::to_string(k.port));
        EXPECT_EQ(c.records.size(), k.wanted ? sent.size() : 0u);
        EXPECT_EQ(feed.counters().not_feed, k.wanted ? 0u : segs.size());
    }
}

TEST_F(MdFeed, LostSegmentResumesAtTheNextStepHeaderAfterTheTimeout) {
    const auto stream = step_stream(100, 5);
    auto segs = segments(stream, 400, 77);
    const size_t lost = segs.size() / 2;
    Collect c;
    md::FeedOptions fo;
    fo.reassembly.gap_timeout_ns = 1'000'000;
    md::FeedDecoder feed(*set_, fo, c);
    uint64_t t = 1'000'000'000;
    for (size_t i = 0; i < segs.size(); ++i) {
        if (i == lost) continue;
        feed.frame(segs[i], t += 1000);
    }
    feed.advance_time(t + 5'000'000);
    feed.finish();
    EXPECT_EQ(feed.reassembly().gaps_timeout, 1u);
    EXPECT_EQ(feed.reassembly().bytes_lost, segs[lost].size() - 54);
    EXPECT_GE(feed.counters().step_lost, 1u);
    ASSERT_LT(c.records.size(), sent.size());
    // Every record decoded is the next one sent, skipping whole messages.
    size_t j = 0;
    for (size_t i = 0; i < c.records.size(); ++i) {
        while (j < sent.size() && !(sent[j] == c.records[i])) ++j;
        ASSERT_LT(j, sent.size()) << "record " << i << " was never sent";
        EXPECT_EQ(c.seqs[i], msg_of[j]);
        ++j;
    }
    const uint64_t messages_decoded = feed.counters().step_messages;
    EXPECT_EQ(messages_decoded + feed.counters().step_lost, 100u);
}

TEST_F(MdFeed, MidStreamPickUpSkipsThePartialMessage) {
    const auto stream = step_stream(50, 3);
    const auto segs = segments(stream, 300, 5000);
    Collect c;
    md::FeedDecoder feed(*set_, md::FeedOptions{}, c);
    for (size_t i = 3; i < segs.size(); ++i) feed.frame(segs[i], 10);
    feed.finish();
    EXPECT_EQ(feed.reassembly().connections_opened_midstream, 1u);
    EXPECT_GT(feed.counters().bytes_skipped, 0u);
    ASSERT_FALSE(c.records.empty());
    // What was decoded is the tail of what was sent.
    const size_t skip = sent.size() - c.records.size();
    for (size_t i = 0; i < c.records.size(); ++i) ASSERT_EQ(c.records[i], sent[skip + i]);
}

TEST_F(MdFeed, BadChecksumIsRefusedAndTheRestDecoded) {
    auto stream = step_stream(10, 2);
    // The 4th message's checksum digit: find its trailer "10=" after 3 messages.
    size_t pos = 0;
    for (int m = 0; m < 4; ++m) {
        pos = std::search(stream.begin() + static_cast<ptrdiff_t>(pos), stream.end(), md::kStepBeginString.begin(),
                          md::kStepBeginString.end()) - stream.begin() + 1;
    }
    const std::string trailer = "\x01" "10=";
    const size_t t = std::search(stream.begin() + static_cast<ptrdiff_t>(pos), stream.end(), trailer.begin(), trailer.end()) -
                     stream.begin();
    stream[t + 4] = stream[t + 4] == '9' ? '0' : static_cast<uint8_t>(stream[t + 4] + 1);
    Collect c;
    md::FeedOptions fo;
    md::FeedDecoder feed(*set_, fo, c);
    feed.stream_bytes(stream);
    feed.finish();
    EXPECT_EQ(feed.counters().step_errors, 1u);
    EXPECT_EQ(feed.counters().step_messages, 9u);
    EXPECT_EQ(c.records.size(), sent.size() - 2);
    ASSERT_FALSE(c.problems.empty());
    EXPECT_NE(c.problems[0].find("10"), std::string::npos) << c.problems[0];
}

TEST_F(MdFeed, UdpDatagramsWithSequencePreambleOneLost) {
    auto gen = md::FeedGenerator::create(*set_, {3201, 5801}, kSeries, 9);
    ASSERT_OK(gen);
    fast::Encoder enc(*set_);
    std::vector<std::vector<uint8_t>> frames;
    std::vector<fast::Record> kept;
    for (uint32_t d = 1; d <= 40; ++d) {
        enc.reset();
        std::vector<uint8_t> p = {0, 0, static_cast<uint8_t>(d >> 8), static_cast<uint8_t>(d)};
        for (int k = 0; k < 3; ++k) {
            fast::Record& r = gen->next();
            ASSERT_OK(enc.encode(r, p));
            if (d != 17) kept.push_back(r);
        }
        if (d == 17) continue;
        frames.push_back(PacketBuilder().eth().ipv4("10.79.0.1", "239.1.1.1").udp(4000, 5000).payload(p).build());
    }
    Collect c;
    md::FeedOptions fo;
    fo.udp_seq_preamble = true;
    md::FeedDecoder feed(*set_, fo, c);
    for (const auto& f : frames) feed.frame(f, 1);
    feed.finish();
    EXPECT_EQ(feed.udp_sequence().missing(), 1u);
    ASSERT_EQ(c.records.size(), kept.size());
    for (size_t i = 0; i < kept.size(); ++i) ASSERT_EQ(c.records[i], kept[i]);
}

TEST_F(MdFeed, RawAndLengthPrefixedFiles) {
    auto gen = md::FeedGenerator::create(*set_, {3201, 5801}, kSeries, 11);
    ASSERT_OK(gen);
    for (md::Framing framing : {md::Framing::Raw, md::Framing::Len32Le, md::Framing::Len32Be, md::Framing::Block}) {
        fast::Encoder enc(*set_);
        std::vector<uint8_t> file, block;
        std::vector<fast::Record> recs;
        for (int b = 0; b < 30; ++b) {
            if (framing != md::Framing::Raw) enc.reset();
            block.clear();
            for (int k = 0; k < 4; ++k) {
                fast::Record& r = gen->next();
                ASSERT_OK(enc.encode(r, block));
                recs.push_back(r);
            }
            if (framing == md::Framing::Raw) file.insert(file.end(), block.begin(), block.end());
            else md::append_block(file, block, framing);
        }
        Collect c;
        md::FeedOptions fo;
        fo.tcp_framing = framing;
        fo.reset_per_block = framing != md::Framing::Raw;
        md::FeedDecoder feed(*set_, fo, c);
        // In two pieces, cut inside a message, as a stream would arrive.
        const size_t cut = file.size() / 2 + 1;
        feed.stream_bytes(std::span<const uint8_t>(file).first(cut));
        feed.stream_bytes(std::span<const uint8_t>(file).subspan(cut));
        feed.finish();
        SCOPED_TRACE(md::framing_name(framing));
        ASSERT_EQ(c.records.size(), recs.size());
        for (size_t i = 0; i < recs.size(); ++i) ASSERT_EQ(c.records[i], recs[i]);
        EXPECT_TRUE(c.problems.empty());
    }
}

}  // namespace
}  // namespace etcpipe::test
