"""City search by Chinese name, full pinyin, initials and prefixes (service/search.py)."""
import pytest

from essc.core import divisions
from essc.core.registry import CityInfo
from essc.service.search import CitySearch

CITIES = [CityInfo(code, name, province, True, "p") for code, name, province in [
    ("330100", "杭州", "浙江"), ("330500", "湖州", "浙江"), ("350100", "福州", "福建"), ("510100", "成都", "四川"),
    ("440300", "深圳", "广东"), ("650100", "乌鲁木齐", "新疆"), ("659012", "白杨市", "新疆"),
    ("500000", "重庆", "重庆"), ("421303", "曾都", "湖北"), ("430100", "长沙", "湖南"), ("141100", "吕梁", "山西"),
]]


@pytest.fixture(scope="module")
def search():
    return CitySearch(CITIES)


def codes(search, q):
    return [c.code for c in search.search(q)]


@pytest.mark.parametrize("q, expected", [
    ("杭州", ["330100"]),
    ("杭州市", ["330100"]),
    ("杭", ["330100"]),
    ("hangzhou", ["330100"]),
    ("HangZhou", ["330100"]),
    ("hang zhou", ["330100"]),
    ("hang", ["330100"]),
    ("hz", ["330100", "330500"]),
    ("HZ", ["330100", "330500"]),
    ("白杨", ["659012"]),
    ("白杨市", ["659012"]),
    ("baiyang", ["659012"]),
    ("wlmq", ["650100"]),
    ("木齐", ["650100"]),
    ("chongqing", ["500000"]),
    ("cq", ["500000"]),
    ("zengdu", ["421303"]),
    ("changsha", ["430100"]),
    ("lvliang", ["141100"]),
    ("luliang", ["141100"]),
    ("3301", ["330100"]),
    ("nowhere", []),
    ("ｘｙｚ", []),
])
def test_search(search, q, expected):
    assert codes(search, q) == expected


def test_exact_matches_rank_first(search):
    assert codes(search, "hu")[0] == "330500"  # 湖州 (prefix of hu-zhou) before anything else
    assert codes(search, "c")[:2] == ["430100", "500000"]  # by code within one rank: 长沙 430100, 重庆 500000


def test_other_readings_are_found_but_ranked_last(search):
    assert codes(search, "cengdou") == ["421303"]  # pypinyin's reading, kept as a secondary key
    assert codes(search, "zhongqing") == []  # 重: the phrase dictionary knows 重庆 is chong-qing


def test_empty_query_lists_everything_by_code(search):
    assert codes(search, "") == sorted(c.code for c in CITIES)
    assert codes(search, None) == codes(search, "   ")
    assert len(search) == len(CITIES)
    assert len(search.search("", limit=3)) == 3


# -- over the whole country (essc.core.divisions) ---------------------------------------------
@pytest.fixture(scope="module")
def country():
    return CitySearch(divisions.cities())


@pytest.mark.parametrize("q, first", [
    ("hz", "330100"), ("HZ", "330100"), ("杭州", "330100"), ("杭州市", "330100"), ("hangzhou", "330100"),
    ("hang zhou", "330100"), ("hang", "330100"), ("杭", "330100"), ("3301", "330100"),
    ("chengdu", "510100"), ("成都", "510100"),
    ("bj", "110000"), ("beijing", "110000"), ("北京市", "110000"),
    ("sansha", "460300"), ("三沙", "460300"),
    ("jinan", "370100"), ("济南", "370100"),
    ("qdn", "522600"), ("黔东南", "522600"), ("黔东南苗族侗族自治州", "522600"), ("侗族", "522600"),
    ("wlmq", "650100"), ("木齐", "650100"),
    ("changzhi", "140400"), ("luohe", "411100"), ("xilinguole", "152500"), ("aletai", "654300"),
    ("xianggang", "810000"), ("taiwan", "710000"),
])
def test_country_search_puts_the_city_first(country, q, first):
    assert codes(country, q)[0] == first


def test_hz_finds_hangzhou_first_and_every_hz_city(country):
    found = codes(country, "hz")
    assert found[0] == "330100"
    assert {"330500", "371700", "441300", "451100", "610700"} <= set(found[:6])  # 湖州 菏泽 惠州 贺州 汉中


def test_same_initials_by_code(country):
    assert codes(country, "cd")[:4] == ["130800", "430700", "510100", "540300"]  # 承德 常德 成都 昌都


def test_exact_before_prefix_before_part_of_the_name(country):
    found = codes(country, "南")  # 南京 (prefix) before 济南 (a part of the name)
    assert found.index("320100") < found.index("370100")
    assert codes(country, "zhangzhi")[-1:] == ["140400"]  # pypinyin's misreading: still found, ranked last


def test_abolished_and_unknown_codes_are_not_found(country):
    assert codes(country, "莱芜") == [] and codes(country, "laiwu") == [] and codes(country, "371200") == []
    assert codes(country, "atlantis") == [] and codes(country, "999999") == []


def test_every_city_of_the_country_has_a_reading(country):
    for city in divisions.cities():
        read = country.reading(city.code)
        assert read.pinyin.isascii() and read.pinyin.isalpha() and read.pinyin.islower(), city
        assert read.initials and read.pinyin.startswith(read.initials[0]), city
        assert codes(country, read.pinyin)[0] == city.code or city.code in codes(country, read.pinyin), city
    assert len(country) == len(divisions.cities()) and len(country.search("")) == len(country)


# -- readings computed ahead (service/readings.json) -------------------------------------------------
def test_readings_computed_ahead_cover_every_name_the_service_indexes(mock_server):
    from essc.core.registry import Registry
    from essc.core.settings import Settings
    from essc.service.cities import CityDirectory
    from essc.service.search import computed_ahead

    directory = CityDirectory(Registry(Settings(base_url=mock_server.url, entry_points=False)).setup())
    missing = sorted({p.short for p in directory.places.values()} - set(computed_ahead()["readings"]))
    assert not missing, f"run `python -m essc.service.cities` to add {missing[:5]}"


def test_readings_computed_ahead_are_what_pypinyin_reads():
    """The file is pypinyin's reading (the override table winning): regenerate it when a newer
    pypinyin reads a name otherwise (with another version only the overrides are checked)."""
    import pypinyin

    from essc.service.search import READINGS, compute_readings, computed_ahead

    ahead = computed_ahead()
    names = sorted(ahead["readings"]) if ahead["pypinyin"] == pypinyin.__version__ else sorted(READINGS)
    stale = [n for n in names if n in ahead["readings"]
             and [list(compute_readings(n)[0]), [list(a) for a in compute_readings(n)[1]]] != ahead["readings"][n]]
    assert not stale, f"readings.json is stale for {stale[:5]}: run `python -m essc.service.cities`"
    for name, (primary, _) in ahead["readings"].items():
        assert len(primary) == len(name) and all(s.isascii() or "ü" in s for s in primary), name


def test_a_name_the_file_lacks_is_read_by_pypinyin():
    from essc.service.search import computed_ahead

    assert "柯桥" not in computed_ahead()["readings"]  # a district, not a city of the country's list
    assert codes(CitySearch([CityInfo("330603", "柯桥", "浙江", True, "p")]), "kq") == ["330603"]


def test_the_api_process_does_not_load_pypinyin(tmp_path):
    """pypinyin's phrase dictionary costs ~54 MB a process: the service starts without it."""
    import os
    import subprocess
    import sys

    code = ("import sys; from essc.service.runtime import Runtime; from essc.service.api import create_app; "
            "create_app(Runtime()); print('pypinyin' in sys.modules)")
    env = {**os.environ, "ESSC_DATA_DIR": str(tmp_path), "ESSC_CITY_BASE_URL": "http://127.0.0.1:9"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
