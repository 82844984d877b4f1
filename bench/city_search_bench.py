"""City search over the whole country, in process. Prints ONE JSON object on stdout.

    python bench/city_search_bench.py [--rounds 20]

The queries are what citizens type into the city picker: for every city of the list its
Chinese short name, its first character, its full pinyin, a pinyin prefix of three letters and
its initials, plus a few that match many cities ("h", "市") or none ("atlantis"). Each query is
timed alone (perf_counter_ns) over ``--rounds`` rounds; the figures are microseconds:

- ``search``: the index lookup (service/search.py ``CitySearch.search``);
- ``rows``: what ``GET /v1/cities?q=`` serialises: the matches with status, plugin, pinyin and
  province (service/cities.py ``CityDirectory.search``), without HTTP;
- ``grouped_ms``: the whole grouped list (``GET /v1/cities`` without ``q``), milliseconds;
- ``build_s``: building the directory (pinyin of every name, the index) in a fresh process.

Target (README, "Performance"): p99 of ``rows`` <= 1 ms.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000, 2)

    return {"p50_us": at(0.50), "p99_us": at(0.99), "max_us": round(ordered[-1] / 1000, 2),
            "mean_us": round(statistics.fmean(ordered) / 1000, 2)}


def queries(directory) -> list[str]:
    out = ["h", "市", "atlantis", "hz", "杭州市", "hang zhou"]
    for place in directory.places.values():
        read = directory.index.reading(place.code)
        out += [place.short, place.short[0], read.pinyin, read.pinyin[:3], read.initials]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20, help="Times every query is run.")
    args = ap.parse_args(argv)

    from essc.core.registry import Registry
    from essc.core.settings import Settings
    from essc.service.cities import CityDirectory

    registry = Registry(Settings.from_env()).setup()
    t0 = time.perf_counter()
    directory = CityDirectory(registry)
    build_s = time.perf_counter() - t0
    work = queries(directory)
    search_ns, rows_ns, grouped_ns = [], [], []
    clock = time.perf_counter_ns
    for _ in range(args.rounds):
        for q in work:
            t = clock()
            directory.index.search(q)
            search_ns.append(clock() - t)
            t = clock()
            directory.search(q)
            rows_ns.append(clock() - t)
        t = clock()
        directory.grouped()
        grouped_ns.append(clock() - t)
    json.dump({
        "cities": len(directory),
        "queries": len(work),
        "rounds": args.rounds,
        "search": percentiles(search_ns),
        "rows": percentiles(rows_ns),
        "grouped_ms": round(statistics.median(grouped_ns) / 1e6, 3),
        "build_s": round(build_s, 3),
        "python": sys.version.split()[0],
    }, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
