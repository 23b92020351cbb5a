// Unit tests of the GGUF reader on synthetic images: every value type, tensor views, and each class
// of malformed input (truncation at every byte, bad header, absurd counts, bad tensor infos).
#include "common/model_format/gguf.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/model_format/gguf_writer.h"
#include "tests/support/status_matchers.h"

namespace tandem::format {
namespace {

using ::tandem::testing::GgufWriter;
using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// A small valid file: a few keys, a string array, an F32 and a Q4_1 tensor.
GgufWriter SmallWriter() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", 2);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "bc", "<|im_end|>"});
  w.AddF32Tensor("norm.weight", {8}, 1.5f);
  std::string q(2 * 20, '\x11');  // two Q4_1 blocks: 64 elements in ne0, 1 row
  w.AddTensor({"blk.0.attn_q.weight", {64, 1}, 3, q, std::nullopt});
  return w;
}

TEST(GgufTest, ParsesEveryValueType) {
  GgufWriter w;
  w.AddU8("t.u8", 200);
  w.AddI8("t.i8", -5);
  w.AddU16("t.u16", 60000);
  w.AddI16("t.i16", -30000);
  w.AddU32("t.u32", 4000000000u);
  w.AddI32("t.i32", -7);
  w.AddF32("t.f32", 0.25f);
  w.AddBool("t.bool", true);
  w.AddString("t.str", "hello");
  w.AddU64("t.u64", 1ull << 40);
  w.AddI64("t.i64", -(1ll << 40));
  w.AddF64("t.f64", 1e-300);
  w.AddI32Array("t.arr_i32", {1, -2, 3});
  w.AddStringArray("t.arr_str", {"x", "", "yz"});
  // Array of two arrays of u8: [[1, 2], [3]].
  w.AddRaw("t.nested", 9,
           GgufWriter::Pod<uint32_t>(9) + GgufWriter::Pod<uint64_t>(2) +
               GgufWriter::Pod<uint32_t>(0) + GgufWriter::Pod<uint64_t>(2) + "\x01\x02" +
               GgufWriter::Pod<uint32_t>(0) + GgufWriter::Pod<uint64_t>(1) + "\x03");
  w.AddU64("t.u64_big", ~0ull);
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(w.Build(), "types.gguf"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.metadata()[0].key, "t.u8");
  EXPECT_EQ(f.GetInt("t.u8").value(), 200);
  EXPECT_EQ(f.GetInt("t.i8").value(), -5);
  EXPECT_EQ(f.GetInt("t.u16").value(), 60000);
  EXPECT_EQ(f.GetInt("t.i16").value(), -30000);
  EXPECT_EQ(f.GetInt("t.u32").value(), 4000000000ll);
  EXPECT_EQ(f.GetInt("t.i32").value(), -7);
  EXPECT_EQ(f.GetFloat("t.f32").value(), 0.25);
  EXPECT_EQ(f.GetBool("t.bool").value(), true);
  EXPECT_EQ(f.GetInt("t.bool").value(), 1);
  EXPECT_EQ(f.GetString("t.str").value(), "hello");
  EXPECT_EQ(f.GetInt("t.u64").value(), 1ll << 40);
  EXPECT_EQ(f.GetInt("t.i64").value(), -(1ll << 40));
  EXPECT_EQ(f.GetFloat("t.f64").value(), 1e-300);
  EXPECT_EQ(f.GetFloat("t.i32").value(), -7.0);
  EXPECT_THAT(f.GetIntArray("t.arr_i32").value(), ::testing::ElementsAre(1, -2, 3));
  ASSERT_OK_AND_ASSIGN(const GgufArray* strs, f.GetArray("t.arr_str"));
  EXPECT_EQ(strs->element_type, GgufValueType::kString);
  EXPECT_THAT(strs->strings, ::testing::ElementsAre("x", "", "yz"));
  ASSERT_OK_AND_ASSIGN(const GgufArray* nested, f.GetArray("t.nested"));
  EXPECT_EQ(nested->element_type, GgufValueType::kArray);
  EXPECT_EQ(nested->count, 2u);

  EXPECT_THAT(f.GetInt("t.missing"), StatusIs(absl::StatusCode::kNotFound, "t.missing"));
  EXPECT_THAT(f.GetInt("t.str"), StatusIs(kInvalid, "t.str"));
  EXPECT_THAT(f.GetString("t.u8"), StatusIs(kInvalid, "t.u8"));
  EXPECT_THAT(f.GetBool("t.u8"), StatusIs(kInvalid));
  EXPECT_THAT(f.GetArray("t.u8"), StatusIs(kInvalid));
  EXPECT_THAT(f.GetIntArray("t.arr_str"), StatusIs(kInvalid, "t.arr_str"));
  EXPECT_THAT(f.GetInt("t.u64_big"), StatusIs(kInvalid, "out of range"));
  EXPECT_TRUE(f.Has("t.f64"));
  EXPECT_FALSE(f.Has("t.nope"));
}

TEST(GgufTest, TensorDataIsPyTorchOrder) {
  GgufWriter w = SmallWriter();
  w.AddF32Tensor("w.weight", {4, 3}, 2.0f);
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(w.Build()));
  ASSERT_EQ(f.tensors().size(), 3u);

  ASSERT_OK_AND_ASSIGN(TensorView norm, f.TensorData("norm.weight"));
  EXPECT_EQ(norm.ndim, 1);
  EXPECT_EQ(norm.shape[0], 8);
  EXPECT_EQ(norm.as<float>()[7], 1.5f);

  ASSERT_OK_AND_ASSIGN(TensorView q, f.TensorData("blk.0.attn_q.weight"));
  EXPECT_EQ(q.dtype, DType::kQ4_1);
  ASSERT_EQ(q.ndim, 2);
  EXPECT_EQ(q.shape[0], 1);
  EXPECT_EQ(q.shape[1], 64);
  EXPECT_EQ(q.stride_bytes[0], 40);
  EXPECT_EQ(q.stride_bytes[1], 20);
  EXPECT_TRUE(q.is_contiguous());

  ASSERT_OK_AND_ASSIGN(TensorView m, f.TensorData("w.weight"));
  ASSERT_EQ(m.ndim, 2);
  EXPECT_EQ(m.shape[0], 3);  // GGUF [in=4, out=3] -> [out, in]
  EXPECT_EQ(m.shape[1], 4);
  EXPECT_EQ(m.stride_bytes[0], 16);
  EXPECT_EQ(m.stride_bytes[1], 4);
  EXPECT_EQ(m.row<float>(2)[3], 2.0f);
  ASSERT_OK_AND_ASSIGN(const TensorInfo* info, f.FindTensor("w.weight"));
  EXPECT_EQ(f.TensorBytes(*info).size(), 48u);
  EXPECT_EQ(static_cast<const void*>(f.TensorBytes(*info).data()), m.data);
  EXPECT_EQ(info->offset % 32, 0u);

  EXPECT_THAT(f.TensorData("nope.weight"), StatusIs(absl::StatusCode::kNotFound, "nope.weight"));
  // Moving the file keeps the views valid (the image does not move).
  GgufFile moved = std::move(f);
  EXPECT_EQ(moved.TensorData("w.weight")->data, m.data);
}

TEST(GgufTest, AcceptsVersion2AndCustomAlignment) {
  GgufWriter w = SmallWriter();
  w.set_version(2);
  w.set_alignment(64);
  w.AddU32("general.alignment", 64);
  w.AddF32Tensor("x.weight", {3});
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::FromBytes(w.Build()));
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
}

TEST(GgufTest, RejectsEveryTruncation) {
  const std::string full = SmallWriter().Build();
  ASSERT_OK(GgufFile::FromBytes(full));
  for (size_t len = 0; len < full.size(); ++len) {
    auto f = GgufFile::FromBytes(full.substr(0, len), "cut.gguf");
    ASSERT_THAT(f, StatusIs(kInvalid, "cut.gguf: ")) << "prefix length " << len;
  }
}

TEST(GgufTest, RejectsBadHeader) {
  GgufWriter w = SmallWriter();
  w.set_magic("GGUG");
  EXPECT_THAT(GgufFile::FromBytes(w.Build(), "m.gguf"), StatusIs(kInvalid, "m.gguf: bad magic"));
  for (uint32_t v : {1u, 4u, 0x03000000u, 0x02000000u}) {
    GgufWriter vw = SmallWriter();
    vw.set_version(v);
    EXPECT_THAT(GgufFile::FromBytes(vw.Build()), StatusIs(kInvalid, "version")) << v;
  }
  GgufWriter v1 = SmallWriter();
  v1.set_version(1);
  EXPECT_THAT(GgufFile::FromBytes(v1.Build()), StatusIs(kInvalid, "version 1"));
  GgufWriter swapped = SmallWriter();
  swapped.set_version(0x03000000u);
  EXPECT_THAT(GgufFile::FromBytes(swapped.Build()), StatusIs(kInvalid, "byte-swapped"));
}

TEST(GgufTest, RejectsAbsurdCounts) {
  GgufWriter tc = SmallWriter();
  tc.set_tensor_count(1ull << 60);
  EXPECT_THAT(GgufFile::FromBytes(tc.Build()), StatusIs(kInvalid, "tensor count"));
  GgufWriter kc = SmallWriter();
  kc.set_kv_count(~0ull);
  EXPECT_THAT(GgufFile::FromBytes(kc.Build()), StatusIs(kInvalid, "kv count"));

  GgufWriter str = SmallWriter();
  str.AddRaw("bad.string", 8, GgufWriter::Pod<uint64_t>(1ull << 62) + "abc");
  EXPECT_THAT(GgufFile::FromBytes(str.Build()), StatusIs(kInvalid, "past the end"));
  GgufWriter key = SmallWriter();
  key.AddRaw(std::string(70000, 'k'), 4, GgufWriter::Pod<uint32_t>(1));
  EXPECT_THAT(GgufFile::FromBytes(key.Build()), StatusIs(kInvalid, "at most 65535"));

  GgufWriter arr = SmallWriter();
  arr.AddRaw("bad.array", 9, GgufWriter::Pod<uint32_t>(4) + GgufWriter::Pod<uint64_t>(1ull << 61));
  EXPECT_THAT(GgufFile::FromBytes(arr.Build()), StatusIs(kInvalid, "'bad.array' claims"));
  GgufWriter sarr = SmallWriter();
  sarr.AddRaw("bad.sarray", 9, GgufWriter::Pod<uint32_t>(8) + GgufWriter::Pod<uint64_t>(~0ull));
  EXPECT_THAT(GgufFile::FromBytes(sarr.Build()), StatusIs(kInvalid, "'bad.sarray' claims"));

  // Arrays nested deeper than any real file are refused (bounds recursion on hostile input).
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += GgufWriter::Pod<uint32_t>(9) + GgufWriter::Pod<uint64_t>(1);
  deep += GgufWriter::Pod<uint32_t>(0) + GgufWriter::Pod<uint64_t>(0);
  GgufWriter nest = SmallWriter();
  nest.AddRaw("deep", 9, deep);
  EXPECT_THAT(GgufFile::FromBytes(nest.Build()), StatusIs(kInvalid, "nested"));
}

TEST(GgufTest, RejectsBadValues) {
  GgufWriter type = SmallWriter();
  type.AddRaw("bad.type", 13, GgufWriter::Pod<uint32_t>(0));
  EXPECT_THAT(GgufFile::FromBytes(type.Build()),
              StatusIs(kInvalid, "key 'bad.type' has unknown value type 13"));
  GgufWriter elem = SmallWriter();
  elem.AddRaw("bad.elem", 9, GgufWriter::Pod<uint32_t>(77) + GgufWriter::Pod<uint64_t>(1));
  EXPECT_THAT(GgufFile::FromBytes(elem.Build()), StatusIs(kInvalid, "unknown value type 77"));
  GgufWriter boolean = SmallWriter();
  boolean.AddRaw("bad.bool", 7, "\x02");
  EXPECT_THAT(GgufFile::FromBytes(boolean.Build()), StatusIs(kInvalid, "bad.bool"));
  GgufWriter dup = SmallWriter();
  dup.AddU32("llama.block_count", 3);
  EXPECT_THAT(GgufFile::FromBytes(dup.Build()),
              StatusIs(kInvalid, "duplicate metadata key 'llama.block_count'"));
  GgufWriter align = SmallWriter();
  align.AddU32("general.alignment", 24);
  EXPECT_THAT(GgufFile::FromBytes(align.Build()), StatusIs(kInvalid, "general.alignment"));
}

TEST(GgufTest, RejectsBadTensorInfos) {
  GgufWriter t99 = SmallWriter();
  t99.AddTensor({"blk.0.attn_k.weight", {32}, 99, std::string(128, '\0'), std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(t99.Build(), "t.gguf"),
              StatusIs(kInvalid,
                       "t.gguf: tensor 'blk.0.attn_k.weight' has unsupported ggml type 99"));

  GgufWriter ne0 = SmallWriter();
  ne0.AddTensor({"q.weight", {48, 1}, 3, std::string(40, '\0'), std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(ne0.Build()),
              StatusIs(kInvalid, "tensor 'q.weight' of type q4_1 has ne0 = 48"));

  GgufWriter nd0 = SmallWriter();
  nd0.AddTensor({"s.weight", {}, 0, "", std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(nd0.Build()),
              StatusIs(kInvalid, "tensor 's.weight' has n_dims 0"));
  GgufWriter nd5 = SmallWriter();
  nd5.AddTensor({"s.weight", {1, 1, 1, 1, 1}, 0, "abcd", std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(nd5.Build()),
              StatusIs(kInvalid, "tensor 's.weight' has n_dims 5"));

  GgufWriter big = SmallWriter();
  big.AddTensor({"huge.weight", {1ull << 32, 1ull << 32}, 0, "", std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(big.Build()),
              StatusIs(kInvalid, "tensor 'huge.weight' has dim"));
  GgufWriter zero = SmallWriter();
  zero.AddTensor({"zero.weight", {4, 0}, 0, "", std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(zero.Build()),
              StatusIs(kInvalid, "tensor 'zero.weight' has dim"));

  GgufWriter dup = SmallWriter();
  dup.AddF32Tensor("norm.weight", {8});
  EXPECT_THAT(GgufFile::FromBytes(dup.Build()),
              StatusIs(kInvalid, "duplicate tensor name 'norm.weight'"));

  GgufWriter name = SmallWriter();
  name.AddF32Tensor(std::string(65, 'n'), {1});
  EXPECT_THAT(GgufFile::FromBytes(name.Build()), StatusIs(kInvalid, "at most 64"));
}

TEST(GgufTest, RejectsBadTensorLayout) {
  GgufWriter mis = SmallWriter();
  mis.AddTensor({"mis.weight", {4}, 0, std::string(16, '\0'), 1000});
  EXPECT_THAT(GgufFile::FromBytes(mis.Build()),
              StatusIs(kInvalid, "tensor 'mis.weight' offset 1000 is not a multiple of the "
                                 "alignment 32"));

  GgufWriter oob = SmallWriter();
  oob.AddTensor({"oob.weight", {1024}, 0, std::string(16, '\0'), std::nullopt});
  EXPECT_THAT(GgufFile::FromBytes(oob.Build()),
              StatusIs(kInvalid, "tensor 'oob.weight' data"));
  GgufWriter far = SmallWriter();
  far.AddTensor({"far.weight", {4}, 0, "", ~0ull - 31});
  EXPECT_THAT(GgufFile::FromBytes(far.Build()), StatusIs(kInvalid, "past the end"));

  GgufWriter overlap = SmallWriter();
  overlap.AddTensor({"a.weight", {16}, 0, std::string(64, '\0'), 1024});
  overlap.AddTensor({"b.weight", {16}, 0, std::string(64, '\0'), 1056});
  EXPECT_THAT(GgufFile::FromBytes(overlap.Build()),
              StatusIs(kInvalid, "tensor 'b.weight' at offset 1056 overlaps tensor 'a.weight'"));
}

TEST(GgufTest, OpenMapsFiles) {
  EXPECT_THAT(GgufFile::Open("/nonexistent/x.gguf"),
              StatusIs(absl::StatusCode::kNotFound, "/nonexistent/x.gguf"));
  const std::string path = ::testing::TempDir() + "/gguf_test_small.gguf";
  const std::string image = SmallWriter().Build();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(image.data(), static_cast<std::streamsize>(image.size()));
  }
  ASSERT_OK_AND_ASSIGN(GgufFile f, GgufFile::Open(path));
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.file_size(), image.size());
  ASSERT_OK_AND_ASSIGN(TensorView norm, f.TensorData("norm.weight"));
  EXPECT_EQ(norm.as<float>()[0], 1.5f);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(image.data(), 10);
  }
  EXPECT_THAT(GgufFile::Open(path), StatusIs(kInvalid, path + ": truncated"));
  std::ofstream(path, std::ios::trunc).close();
  EXPECT_THAT(GgufFile::Open(path), StatusIs(kInvalid, "empty"));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tandem::format
