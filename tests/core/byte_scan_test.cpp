// Specification of core/byte_scan.hpp: every form of every string, in every
// file under a directory, at its byte offset.

#include "core/byte_scan.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace derive {
namespace {

class byte_scan_test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/derive-byte-scan-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& name, const std::string& bytes) {
    auto path = std::filesystem::path(dir_) / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << bytes;
  }
  byte_scan_report scan(std::vector<std::string> needles) {
    auto r = scan_directory(dir_, needles);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? *r : byte_scan_report{};
  }
  std::string dir_;
};

TEST_F(byte_scan_test, forms_are_plain_and_json_escaped_without_duplicates) {
  auto forms = needle_forms("Zoë \"Z\"");
  ASSERT_EQ(forms.size(), 3u);
  EXPECT_EQ(forms[0].second, "Zoë \"Z\"");
  EXPECT_EQ(forms[1].second, "Zoë \\\"Z\\\"");
  EXPECT_EQ(forms[2].second, "Zo\\u00eb \\\"Z\\\"");
  EXPECT_EQ(needle_forms("alice").size(), 1u);
  EXPECT_TRUE(needle_forms("").empty());
}

TEST_F(byte_scan_test, reports_each_hit_with_file_and_offset) {
  write("a.bin", std::string("xx\0alice", 8) + "..alice");
  write("sub/b.bin", "{\"name\":\"Zo\\u00eb\"}");
  write("c.bin", "nothing here");
  auto r = scan({"alice", "Zoë"});
  EXPECT_EQ(r.files, 3u);
  ASSERT_EQ(r.hits.size(), 3u);
  EXPECT_EQ(r.hits[0].file, dir_ + "/a.bin");
  EXPECT_EQ(r.hits[0].offset, 3u);
  EXPECT_EQ(r.hits[1].offset, 10u);
  EXPECT_EQ(r.hits[2].file, dir_ + "/sub/b.bin");
  EXPECT_EQ(r.hits[2].offset, 9u);
  EXPECT_EQ(r.hits[2].form, "json_ascii");
  EXPECT_EQ(r.hits[2].needle, "Zoë");
}

TEST_F(byte_scan_test, finds_a_hit_across_the_chunk_boundary_once) {
  std::string big((size_t{1} << 20) - 3, '.');
  write("big.bin", big + "secret" + big + "secret");
  auto r = scan({"secret"});
  ASSERT_EQ(r.hits.size(), 2u);
  EXPECT_EQ(r.hits[0].offset, big.size());
  EXPECT_EQ(r.hits[1].offset, 2 * big.size() + 6);
}

TEST_F(byte_scan_test, a_missing_directory_is_an_error) {
  auto r = scan_directory(dir_ + "/none", {"x"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::not_found);
}

}  // namespace
}  // namespace derive
