import pytest

from domains.xenconfig import ConfigError, parse_xen_config
from hosts.units import BadSize, format_bound, format_mib, parse_memory_kib

SEED_CONFIG = 'name   = "foo"\nmemory = 1024\nmaxmem = 4096\nvcpus  = 1\n'


@pytest.mark.parametrize(
    "text, kib",
    [("512", 524288), ("512M", 524288), ("512MiB", 524288), ("4G", 4194304), ("4g", 4194304), ("524288K", 524288), (512, 524288), (" 1.5G ", 1572864),
     ("1000000K", 1000000)],
)
def test_sizes_are_mib_when_bare_and_accept_units(text, kib):
    assert parse_memory_kib(text) == kib


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "12X", "1.5K", "512 M B", "4096B", "536870912b"])
def test_bad_sizes_name_the_accepted_forms(text):
    with pytest.raises(BadSize) as error:
        parse_memory_kib(text)
    assert "512M, 4G, 524288K" in str(error.value)


@pytest.mark.parametrize("text", ["0.5", "0.5M", "512.5"])
def test_a_part_of_a_mib_is_taken_only_in_k(text):
    """A floor of "0.5" was stored as 512 KiB and shown as "0 MiB"; KiB are given with K."""
    with pytest.raises(BadSize, match="is not a whole number of MiB"):
        parse_memory_kib(text)


def test_a_figure_shows_in_whole_mib_and_a_bound_exactly():
    """A balloon's 407,716 KiB reads "398 MiB"; a floor of 1000000K is not the "976 MiB" a resize to 976 is
    then refused below."""
    assert (format_mib(407716), format_bound(1_000_000), format_bound(1024 * 1024)) == ("398 MiB", "976.56 MiB", "1,024 MiB")


def test_seed_config():
    config = parse_xen_config(SEED_CONFIG)
    assert (config.name, config.memory_kib, config.maxmem_kib, config.vcpus) == ("foo", 1024 * 1024, 4096 * 1024, 1)


def test_maxmem_defaults_to_memory():
    config = parse_xen_config('name = "bar"\nmemory = 512\n')
    assert config.maxmem_kib == config.memory_kib == 512 * 1024


@pytest.mark.parametrize(
    "text, message",
    [
        ("memory = 512", "no `name`"),
        ('name = "x"\nmemory = lots', "not a memory size"),
        ('name = "x"\nmemory = 1024\nmaxmem = 512', "below memory"),
        ('name = "a b"\nmemory = 1', "name 'a b'"),
        ('name = "x"\nmemory 1024', "line 2"),
        ('name = "x"\nmemory = 1\nvcpus = 0', "out of range"),
        ('name = "x"\nmemory = 1024\nmaxmem = 4X', "maxmem: '4X' is not a memory size"),
        ('name = "x"\nmemory = 1024\nmaxmen = 4096', "line 3: BalloonWeb does not set up `maxmen`: it creates a domain from"),
        ('name = "x"\nmemory = 1024\ndisk = [ "phy:/dev/vg/x,xvda,w",\n  "phy:/dev/vg/y,xvdb,w" ]', "line 3: BalloonWeb does not set up `disk`"),
        ('name = "x"\nmemory = 1024\nmemory = 2048', "line 3: `memory` is set twice"),
    ],
)
def test_bad_configs_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError) as error:
        parse_xen_config(text)
    assert message in str(error.value)


def test_comments_quotes_and_spacing_as_python_reads_them():
    text = (
        "# rack 4\n"
        'name = "web-1"   # the front end\n'
        "memory = '1G'\n\n"
        'description = "rack #4, \\"row\\" 2"\n'
        "vcpus = 2\n"
    )
    config = parse_xen_config(text)
    assert (config.name, config.memory_kib, config.maxmem_kib, config.vcpus, config.description) == (
        "web-1", 1024 * 1024, 1024 * 1024, 2, 'rack #4, "row" 2'
    )
