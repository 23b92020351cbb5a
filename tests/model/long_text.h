// tests/model/long_text.h
//
// Real-looking English filler for long-context measurements (sparse prefill accuracy, passkey
// retrieval), generated deterministically from a seed rather than checked in: sentences from a few
// dozen templates with varied names, places, objects and numbers, grouped into paragraphs, so that
// attention sees natural token statistics without the exact repetition of the classic
// "The grass is green." filler. Also the passkey prompt built on it. Header-only, pure functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace tandem::testing {

inline std::string LongText(int64_t approx_chars, uint32_t seed) {
  static const char* const kTemplates[] = {
      "In the spring of {Y}, {N} moved to {P} to work at the old {O} factory.",
      "The committee in {P} met on a rainy Tuesday and argued for hours about the {O}.",
      "{N} had never seen a {O} before, so the visit to {P} felt like an adventure.",
      "According to the local newspaper, {D} families in {P} lost power during the storm.",
      "Most of the students agreed that the lecture on the history of the {O} was too long.",
      "When the train finally arrived in {P}, {N} was already asleep on the bench.",
      "The recipe called for {D} eggs, a cup of flour and a pinch of salt.",
      "Engineers from {P} spent {D} months testing the new {O} before it was approved.",
      "{N} wrote a long letter to a cousin in {P}, describing the garden and the {O}.",
      "Nobody in the village could remember who had built the stone bridge near the {O}.",
      "The market in {P} opens at dawn, and by noon most of the fresh bread is gone.",
      "After {D} years of research, the team published a short paper about the {O}.",
      "{N} laughed and said that the {O} in {P} was much smaller than the photographs suggested.",
      "The museum keeps a {O} from {Y} behind glass, next to a faded map of {P}.",
      "It rained for {D} days in a row, and the river near {P} rose above the old mark.",
      "The council decided to repaint the {O} in bright colours before the summer festival.",
      "{N} kept a notebook of every bird seen from the window of the house in {P}.",
      "The small bakery on the corner sold {D} loaves on the first day after it reopened.",
      "Critics praised the new play in {P}, although the second act dragged a little.",
      "During the winter of {Y}, the lake froze so hard that people walked across it to {P}.",
      "{N} repaired the {O} with wire, tape and a great deal of patience.",
      "The library in {P} lends out tools as well as books, including a {O}.",
      "Travellers often stop in {P} for the soup, which has not changed in {D} years.",
      "The guide explained that the {O} was moved to {P} by boat in {Y}.",
      "{N} and a friend spent the afternoon sorting old photographs into boxes.",
      "A quiet road leads from {P} through the forest to a farm that grows apples.",
      "The report listed {D} reasons why the {O} project was delayed again.",
      "Children in {P} learn to swim in the river, just as their grandparents did.",
  };
  static const char* const kNames[] = {"Maria", "Tomas",  "Aiko",   "Samuel", "Leila", "Jonas",
                                       "Priya", "Oliver", "Fatima", "Henrik", "Grace", "Mateo"};
  static const char* const kPlaces[] = {"Lisbon", "Oslo",       "Kyoto",   "Denver", "Nairobi",
                                        "Bruges", "Valparaiso", "Tallinn", "Perth",  "Quebec"};
  static const char* const kObjects[] = {
      "clock tower", "printing press", "windmill",      "telescope",  "steam engine", "lighthouse",
      "organ",       "sailing ship",   "radio station", "greenhouse", "water wheel",  "loom"};
  std::mt19937 rng(seed);
  auto pick = [&](auto& arr) {
    return arr[std::uniform_int_distribution<size_t>(0, std::size(arr) - 1)(rng)];
  };
  std::string out;
  int sentences_in_paragraph = 0;
  while (static_cast<int64_t>(out.size()) < approx_chars) {
    std::string s = pick(kTemplates);
    s = absl::StrReplaceAll(
        s, {{"{N}", pick(kNames)},
            {"{P}", pick(kPlaces)},
            {"{O}", pick(kObjects)},
            {"{Y}", absl::StrCat(std::uniform_int_distribution<int>(1850, 2020)(rng))},
            {"{D}", absl::StrCat(std::uniform_int_distribution<int>(2, 90)(rng))}});
    absl::StrAppend(&out, sentences_in_paragraph == 0 ? "" : " ", s);
    if (++sentences_in_paragraph >= std::uniform_int_distribution<int>(3, 7)(rng)) {
      out += "\n\n";
      sentences_in_paragraph = 0;
    }
  }
  return out;
}

// A passkey-retrieval prompt of about `approx_chars` characters: filler with the needle
// "The pass key is <key>. Remember it. <key> is the pass key." after the paragraph nearest to
// `depth` (0 = start, 1 = end), then the question. The answer is `key`.
inline std::string PasskeyPrompt(int64_t approx_chars, double depth, int32_t key, uint32_t seed) {
  const std::string filler = LongText(approx_chars, seed);
  size_t at = static_cast<size_t>(depth * static_cast<double>(filler.size()));
  at = std::min(filler.size(), at);
  const size_t para = filler.rfind("\n\n", at);
  at = para == std::string::npos ? 0 : para + 2;
  const std::string needle =
      absl::StrCat("The pass key is ", key, ". Remember it. ", key, " is the pass key.\n\n");
  return absl::StrCat(
      "There is an important piece of information hidden inside a lot of irrelevant text. Find "
      "it and memorize it.\n\n",
      filler.substr(0, at), needle, filler.substr(at), "\n\nWhat is the pass key? The pass key is");
}

}  // namespace tandem::testing
