"""City search by Chinese name, full pinyin, initials and prefixes (service/search.py)."""
import pytest

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
