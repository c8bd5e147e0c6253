// `losa generate` with text prompts, end to end on the tiny text model
// (tests/fixtures/tiny-sdar-text, made by tools/fixtures/make_tiny_sdar_text.py): stdout is the
// text transformers decodes from the reference generation; chat prompts are the template's ids;
// stop strings and stop ids cut the answer; streamed blocks never split a character; several
// prompts print whole answers in order; every error names its flag.
#include <gtest/gtest.h>
#include <utf8proc.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/run_process.hpp"
#include "losa/runtime/tokenizer.hpp"
#include "runtime/fixture.hpp"

namespace losa::test {
namespace {

const std::string kFolder = fixture_dir() + "/tiny-sdar-text";
const std::string kModel = kFolder + "/model";

const nlohmann::json& reference() {
  static const nlohmann::json ref = nlohmann::json::parse(read_file(kFolder + "/reference.json"));
  return ref;
}

const nlohmann::json& reference_case(const std::string& name) {
  for (const auto& c : reference()["cases"])
    if (c["name"] == name) return c;
  throw std::runtime_error("no reference case " + name);
}

/// `losa generate --model <tiny text model>` under the reference's settings, with `args` after.
ProcessResult generate(std::vector<std::string> args, const std::string& stdin_text = "") {
  const auto& s = reference()["settings"];
  std::vector<std::string> argv = {
      LOSA_BINARY,        "generate",
      "--model",          kModel,
      "--block-size",     std::to_string(s["block_size"].get<int>()),
      "--steps",          std::to_string(s["steps"].get<int>()),
      "--strategy",       s["strategy"].get<std::string>(),
      "--threshold",      std::to_string(s["threshold"].get<double>()),
      "--max-new-tokens", std::to_string(s["max_new_tokens"].get<int>()),
      "--kv-dtype",       "f32",
      "--threads",        "1"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, stdin_text);
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_file(path)); }

/// generate(args) with --json: the run and what --json recorded of its first prompt.
struct JsonRun {
  ProcessResult process;
  nlohmann::json sequence;
};

JsonRun generate_with_json(std::vector<std::string> args) {
  TempDir dir;
  args.insert(args.end(), {"--json", dir.path + "/out.json"});
  JsonRun run{generate(args), {}};
  if (run.process.status == 0) run.sequence = read_json(dir.path + "/out.json")["sequences"][0];
  return run;
}

bool is_valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  for (utf8proc_ssize_t at = 0, n = static_cast<utf8proc_ssize_t>(s.size()); at < n;) {
    utf8proc_int32_t c = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(p + at, n - at, &c);
    if (used <= 0) return false;
    at += used;
  }
  return true;
}

// stdout is the reference text and a newline, for plain prompts of every kind of answer: one
// that runs to --max-new-tokens, one that ends at an eos id, one with multi-byte characters.
TEST(GenerateText, PromptPrintsTheReferenceText) {
  for (const char* name : {"plain", "eos", "split_character"}) {
    const auto& c = reference_case(name);
    const ProcessResult r = generate({"--prompt", c["prompt"].get<std::string>()});
    EXPECT_EQ(r.status, 0) << name << ": " << r.err;
    EXPECT_EQ(r.out, c["text"].get<std::string>() + "\n") << name;
  }
}

// --json records the prompt ids, the generated ids (up to and including an eos) and the text.
TEST(GenerateText, JsonRecordsIdsAndText) {
  for (const char* name : {"plain", "eos"}) {
    const auto& c = reference_case(name);
    const auto [r, seq] = generate_with_json({"--prompt", c["prompt"]});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(seq["prompt_ids"], c["prompt_ids"]) << name;
    EXPECT_EQ(seq["generated"], c["generated"]) << name;
    EXPECT_EQ(seq["text"], c["text"]) << name;
    EXPECT_EQ(seq["stop_string"], "");
    EXPECT_EQ(seq["stopped"], std::string(name) == "eos");
  }
  const auto& eos = reference_case("eos")["generated"];
  const auto stops = reference()["stop_ids"].get<std::vector<int>>();
  EXPECT_LT(eos.size(), reference()["settings"]["max_new_tokens"].get<size_t>());
  EXPECT_NE(std::find(stops.begin(), stops.end(), eos.back().get<int>()), stops.end());
}

// --chat --system renders the model folder's template (the ids transformers' apply_chat_template
// gives), with the thinking switch; the answer is the reference's.
TEST(GenerateText, ChatRendersAsTheTemplate) {
  struct Case {
    const char* name;
    std::vector<std::string> switches;
  };
  for (const Case& k : {Case{"chat_no_think", {"--no-think"}}, Case{"chat_thinking", {}},
                        Case{"chat_thinking", {"--enable-thinking"}}}) {
    const auto& c = reference_case(k.name);
    std::vector<std::string> args = {"--chat", "--system", c["system"], "--prompt", c["prompt"]};
    args.insert(args.end(), k.switches.begin(), k.switches.end());
    const auto [r, seq] = generate_with_json(args);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(seq["prompt_ids"], c["prompt_ids"]) << k.name;
    EXPECT_EQ(r.out, c["text"].get<std::string>() + "\n") << k.name;
  }
  EXPECT_NE(reference_case("chat_no_think")["prompt_ids"],
            reference_case("chat_thinking")["prompt_ids"]);
}

// A stop string: the text before it is printed, the rest is not, and decoding stops there.
TEST(GenerateText, StopStringCutsTheAnswer) {
  const auto& stop = reference()["stop_string"];
  const auto& c = reference_case(stop["case"]);
  const auto [r, seq] = generate_with_json(
      {"--prompt", c["prompt"], "--stop", stop["stop"], "--stop", "never appears"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, stop["text"].get<std::string>() + "\n");
  EXPECT_EQ(seq["stop_string"], stop["stop"]);
  const auto full = c["generated"].get<std::vector<int>>();
  const auto cut = seq["generated"].get<std::vector<int>>();
  EXPECT_LT(cut.size(), full.size()) << "decoding went on after the stop string";
  EXPECT_EQ(cut, std::vector<int>(full.begin(), full.begin() + cut.size()));
}

// A stop id that is an ordinary token ends the answer before that token.
TEST(GenerateText, StopIdCutsBeforeTheToken) {
  const auto& stop = reference()["stop_id"];
  const auto& c = reference_case(stop["case"]);
  const auto [r, seq] = generate_with_json(
      {"--prompt", c["prompt"], "--stop-ids", std::to_string(stop["stop_id"].get<int>())});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, stop["text"].get<std::string>() + "\n");
  EXPECT_EQ(seq["generated"], stop["generated"]);
}

// The answer streams block by block (the per-block texts of --json are what each block printed):
// every piece is whole characters, and the text shown never takes anything back. Where a block
// ends inside a well-formed multi-byte character (the reference lists those byte offsets of the
// tokens' bytes), its first bytes are held back and the next block's piece starts with it.
TEST(GenerateText, StreamedBlocksNeverSplitACharacter) {
  const auto& c = reference_case("split_character");
  const auto [r, seq] = generate_with_json({"--prompt", c["prompt"]});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string text = c["text"];
  const auto splits = c["split_byte_offsets"].get<std::vector<size_t>>();
  ASSERT_FALSE(splits.empty()) << "the case must end a block inside a character";
  const auto tokenizer = runtime::Tokenizer::load(kModel);
  const auto ids = seq["generated"].get<std::vector<int>>();
  const size_t B = reference()["settings"]["block_size"];
  size_t block_end =
      B - seq["prompt_tokens"].get<size_t>() % B;  // the first block holds the prompt's tail
  size_t token = 0, raw_bytes = 0;
  std::string printed;
  bool split_before = false;
  int splits_seen = 0;
  for (const auto& block : seq["blocks"]) {
    const std::string piece = block["text"];
    EXPECT_TRUE(is_valid_utf8(piece)) << "block " << block["block"];
    if (split_before) {
      ASSERT_FALSE(piece.empty());
      EXPECT_GE(static_cast<unsigned char>(piece[0]), 0xC2)
          << "block " << block["block"] << " does not start with the held-back character";
    }
    printed += piece;
    EXPECT_EQ(text.compare(0, printed.size(), printed), 0) << "block " << block["block"];
    for (; token < std::min(block_end, ids.size()); ++token)
      if (!tokenizer.is_special(ids[token])) raw_bytes += tokenizer.token_bytes(ids[token]).size();
    block_end += B;
    split_before = std::find(splits.begin(), splits.end(), raw_bytes) != splits.end();
    splits_seen += split_before;
  }
  EXPECT_EQ(splits_seen, static_cast<int>(splits.size()));
  EXPECT_EQ(printed, text);
  EXPECT_EQ(printed + "\n", r.out);
}

std::string batch_output(const std::vector<std::string>& names) {
  std::string expected;
  for (size_t i = 0; i < names.size(); ++i)
    expected += "=== answer " + std::to_string(i + 1) + "/" + std::to_string(names.size()) +
                " ===\n" + reference_case(names[i])["text"].get<std::string>() + "\n";
  return expected;
}

// Several prompts (repeated --prompt, or --prompts-jsonl) decode as one batch; each answer is
// printed whole, in prompt order, after its header line.
TEST(GenerateText, SeveralPromptsPrintEachAnswerInOrder) {
  const std::vector<std::string> names = {"plain", "eos", "split_character"};
  std::vector<std::string> args;
  for (const auto& n : names) args.insert(args.end(), {"--prompt", reference_case(n)["prompt"]});
  ProcessResult r = generate(args);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, batch_output(names));

  TempDir dir;
  const std::string jsonl = dir.path + "/prompts.jsonl";
  write_file(jsonl, nlohmann::json(reference_case("plain")["prompt"]).dump() + "\n\n" +
                        nlohmann::json{{"prompt", reference_case("eos")["prompt"]}}.dump() + "\n" +
                        nlohmann::json(reference_case("split_character")["prompt"]).dump() + "\n");
  r = generate({"--prompts-jsonl", jsonl});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, batch_output(names));
}

// A prompt file over several prefill chunks; standard input as a prompt file.
TEST(GenerateText, PromptFiles) {
  const auto& c = reference_case("long_prompt_file");
  ASSERT_GT(c["prompt_ids"].size(), 512u);
  ProcessResult r = generate({"--prompt-file", kFolder + "/" + c["prompt_file"].get<std::string>(),
                              "--prefill-chunk", "256"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, c["text"].get<std::string>() + "\n");
  const auto& plain = reference_case("plain");
  r = generate({"--prompt-file", "-"}, plain["prompt"]);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, plain["text"].get<std::string>() + "\n");
}

// Token prompts: a --tokens takes its ids quoted, comma separated or as separate words up to the
// next flag; each --tokens is a prompt, and their answers print one line each, in order.
TEST(GenerateText, TokenIdsQuotedCommaSeparatedOrUnquoted) {
  std::vector<std::string> ids;
  for (const auto& id : reference_case("plain")["prompt_ids"]) ids.push_back(std::to_string(id.get<int>()));
  ASSERT_GE(ids.size(), 3u);
  std::string spaced, commas;
  for (size_t i = 0; i < ids.size(); ++i) {
    spaced += (i ? " " : "") + ids[i];
    commas += (i ? "," : "") + ids[i];
  }
  const ProcessResult quoted = generate({"--tokens", spaced});
  ASSERT_EQ(quoted.status, 0) << quoted.err;
  ASSERT_FALSE(quoted.out.empty());
  EXPECT_EQ(quoted.out.back(), '\n');
  const ProcessResult comma = generate({"--tokens", commas});
  EXPECT_EQ(comma.status, 0) << comma.err;
  EXPECT_EQ(comma.out, quoted.out);
  std::vector<std::string> args = {"--tokens"};
  args.insert(args.end(), ids.begin(), ids.end());
  const ProcessResult words = generate(args);
  EXPECT_EQ(words.status, 0) << words.err;
  EXPECT_EQ(words.out, quoted.out);

  // Two prompts, the second its first three ids: two lines, each the answer of its prompt alone.
  const std::vector<std::string> second = {ids[0], ids[1], ids[2]};
  const ProcessResult alone = generate({"--tokens", ids[0], ids[1], ids[2]});
  ASSERT_EQ(alone.status, 0) << alone.err;
  args.push_back("--tokens");
  args.insert(args.end(), second.begin(), second.end());
  const ProcessResult both = generate(args);
  EXPECT_EQ(both.status, 0) << both.err;
  EXPECT_EQ(both.out, quoted.out + alone.out);
  EXPECT_NE(quoted.out, alone.out) << "the two prompts must differ for the order to be checked";
}

// generate and tokenize read the same model folder: the prompt's ids agree.
TEST(GenerateText, TokenizeReadsTheSameFolder) {
  const auto& c = reference_case("plain");
  const ProcessResult r =
      run_process({LOSA_BINARY, "tokenize", "--model", kModel, "--text", c["prompt"], "--ids"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::string expected;
  for (const auto& id : c["prompt_ids"])
    expected += (expected.empty() ? "" : " ") + std::to_string(id.get<int>());
  EXPECT_EQ(r.out, expected + "\n");
}

// --random-weights finds the tokenizer beside its config.json.
TEST(GenerateText, RandomWeightsUseTheTokenizerBesideTheConfig) {
  const ProcessResult r =
      run_process({LOSA_BINARY, "generate", "--random-weights", kModel + "/config.json", "--prompt",
                   "Hello", "--max-new-tokens", "6", "--threads", "1"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(is_valid_utf8(r.out));
  EXPECT_EQ(r.out.back(), '\n');
}

void expect_flag_error(const ProcessResult& r, const std::string& message) {
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_NE(r.err.find("error: " + message), std::string::npos) << "stderr: " << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(GenerateText, ErrorsNameTheFlag) {
  TempDir dir;
  expect_flag_error(generate({"--prompt", "hi", "--tokens", "1 2 3"}),
                    "--prompt cannot be combined with --tokens");
  expect_flag_error(generate({"--prompt-file", "/nonexistent/p.txt"}),
                    "--prompt-file cannot read '/nonexistent/p.txt'");
  expect_flag_error(generate({"--prompt", "a", "--prompt-file", "-"}),
                    "--prompt or --prompt-file or --prompts-jsonl: give one kind");
  expect_flag_error(generate({"--prompt", "bad \xff byte"}), "--prompt is not valid UTF-8: byte 4");
  expect_flag_error(generate({"--chat", "--prompt", "bad \xff byte"}),
                    "--prompt is not valid UTF-8: byte 4");
  expect_flag_error(generate({"--chat", "--system", "\xc3", "--prompt", "fine"}),
                    "--system is not valid UTF-8: byte 0");
  const std::string bad_file = dir.path + "/bad.txt";
  write_file(bad_file, "ok\xfe");
  expect_flag_error(generate({"--prompt-file", bad_file}),
                    "--prompt-file '" + bad_file + "' is not valid UTF-8: byte 2");
  const std::string jsonl = dir.path + "/bad.jsonl";
  write_file(jsonl, "\"fine\"\n{\"prompt\": \n");
  expect_flag_error(generate({"--prompts-jsonl", jsonl}),
                    "--prompts-jsonl '" + jsonl + "' line 2 is not JSON");
  write_file(jsonl, "{\"text\": \"x\"}\n");
  expect_flag_error(generate({"--prompts-jsonl", jsonl}),
                    "--prompts-jsonl '" + jsonl + "' line 1 must be a JSON string");
  expect_flag_error(generate({"--prompt", "hi", "--system", "S"}), "--system needs --chat");
  expect_flag_error(generate({"--prompt", "hi", "--no-think"}), "--no-think needs --chat");
  expect_flag_error(generate({"--chat", "--prompt", "hi", "--no-think", "--enable-thinking"}),
                    "--no-think contradicts --enable-thinking");
  expect_flag_error(generate({"--tokens", "1 2 3", "--stop", "x"}), "--stop needs text prompts");
  expect_flag_error(generate({"--tokens", "1 2 3", "--chat"}), "--chat needs text prompts");
  expect_flag_error(generate({"--prompt", "hi", "--stop", ""}), "--stop ");
  expect_flag_error(generate({"--prompt", ""}), "--prompt is empty");
  expect_flag_error(generate({}), "--prompt is missing");
  // A model folder without tokenizer files, by --model and by --random-weights.
  const std::string no_tokenizer = tiny_model("bf16-sharded");
  expect_flag_error(
      run_process({LOSA_BINARY, "generate", "--model", no_tokenizer, "--prompt", "hi"}),
      "--model has no tokenizer files");
  expect_flag_error(run_process({LOSA_BINARY, "generate", "--random-weights",
                                 no_tokenizer + "/config.json", "--prompt", "hi"}),
                    "--random-weights has no tokenizer files");
}

// The tokenizer must fit the model: the same mask token, no more tokens than embedding rows.
TEST(GenerateText, TokenizerThatDoesNotFitTheModel) {
  TempDir dir;
  const std::string model = dir.copy_of(kModel);
  auto config = read_json(model + "/config.json");
  config["mask_token_id"] = 5;
  write_file(model + "/config.json", config.dump());
  expect_flag_error(
      run_process({LOSA_BINARY, "generate", "--model", model, "--prompt", "hi", "--threads", "1"}),
      "--model has a tokenizer whose mask token is id 1270 but config.json's mask_token_id is 5");
  // --mask-id chooses, and then the run goes ahead.
  EXPECT_EQ(run_process({LOSA_BINARY, "generate", "--model", model, "--prompt", "hi", "--mask-id",
                         "1270", "--max-new-tokens", "4", "--threads", "1"})
                .status,
            0);
  // ids in config.json must be below its vocab_size: eos, bos and mask move below 1000.
  config["vocab_size"] = 1000;
  config["mask_token_id"] = config["eos_token_id"] = config["bos_token_id"] = 999;
  write_file(model + "/config.json", config.dump());
  std::remove((model + "/generation_config.json").c_str());
  expect_flag_error(
      run_process({LOSA_BINARY, "generate", "--random-weights", model + "/config.json", "--prompt",
                   "hi", "--threads", "1"}),
      "--random-weights has a tokenizer of 1271 tokens, more than config.json's vocab_size 1000");
}

}  // namespace
}  // namespace losa::test
