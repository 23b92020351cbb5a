// kernels/internal/op_table.h
//
// OpTable: how a backend lists the ops it runs, one entry per op in one place, and the two
// dispatchers that read it, TableSupports() for KernelBackend::Supports() and TableRun() for
// KernelBackend::Run(), so that the two can never disagree. An entry is any small object with
//
//   using Params = XParams;                           // one type of the OpCall variant (op.h)
//   absl::Status Check(ctx..., const Params&) const;  // validation only: OK exactly when Run
//                                                     // accepts the call (read by TableSupports)
//   absl::Status Run(ctx..., const Params&) const;    // validates again, then executes
//
// where ctx... is what the backend passes along: nothing for cpu_ref; for cuda, the device index to
// Check and the stream and backend to Run. An entry that is only run, never asked (cpu's fast
// paths, which fall back to cpu_ref), needs no Check.
//
// An op without an entry is simply not run by that backend: TableSupports() says false and
// TableRun() returns InvalidArgument naming the op and the ops the backend does run, which the
// consistency harness reports as NOT_SUPPORTED. A new op therefore touches only the backends that
// implement it (the variant in op.h stays closed, and cpu_ref, the spec, must list every op: a
// static_assert with ListsEveryOp checks its table). Tables are constexpr values; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/op.h"

namespace tandem::kernels {

template <typename... Entries>
class OpTable {
 public:
  constexpr explicit OpTable(Entries... entries) : entries_(entries...) {
    static_assert(EachOpOnce(std::index_sequence_for<Entries...>{}), "an op is listed twice");
  }

  template <typename P>
  static constexpr bool Has() {
    return IndexOf<P>() < sizeof...(Entries);
  }
  template <typename P>
  constexpr const auto& Get() const {
    static_assert(Has<P>(), "no entry for this op; test Has<P>() first");
    return std::get<IndexOf<P>()>(entries_);
  }
  // The listed ops' names in table order, "matmul, rmsnorm, ..." (for error messages).
  static std::string Names() {
    std::string names;
    for (std::string_view name : {std::string_view(Entries::Params::kName)...}) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", AV(name));
    }
    return names;
  }

 private:
  template <typename P>
  static constexpr size_t IndexOf() {
    constexpr bool matches[] = {std::is_same_v<typename Entries::Params, P>...};
    for (size_t i = 0; i < sizeof...(Entries); ++i) {
      if (matches[i]) return i;
    }
    return sizeof...(Entries);
  }
  template <size_t... I>
  static constexpr bool EachOpOnce(std::index_sequence<I...>) {
    return ((IndexOf<typename std::tuple_element_t<I, std::tuple<Entries...>>::Params>() == I) &&
            ...);
  }

  std::tuple<Entries...> entries_;
};

// Whether `Table` has an entry for every op of the OpCall variant (cpu_ref, the spec, must).
template <typename Table, typename Call = OpCall>
struct ListsEveryOp;
template <typename Table, typename... Ops>
struct ListsEveryOp<Table, std::variant<Ops...>>
    : std::bool_constant<(Table::template Has<Ops>() && ...)> {};

// Supports(): the call's op has an entry and its Check passes.
template <typename Table, typename... Ctx>
bool TableSupports(const Table& table, const OpCall& call, Ctx&... ctx) {
  return std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (Table::template Has<P>()) {
          return table.template Get<P>().Check(ctx..., p).ok();
        } else {
          return false;
        }
      },
      call);
}

// Run(): the entry's Run, or InvalidArgument "<op>: not run by backend <name>; it runs: ...".
template <typename Table, typename... Ctx>
absl::Status TableRun(const Table& table, std::string_view backend, const OpCall& call,
                      Ctx&... ctx) {
  return std::visit(
      [&](const auto& p) -> absl::Status {
        using P = std::decay_t<decltype(p)>;
        if constexpr (Table::template Has<P>()) {
          return table.template Get<P>().Run(ctx..., p);
        } else {
          return absl::InvalidArgumentError(absl::StrCat(AV(P::kName), ": not run by backend ",
                                                         AV(backend), "; it runs: ", Table::Names()));
        }
      },
      call);
}

}  // namespace tandem::kernels
