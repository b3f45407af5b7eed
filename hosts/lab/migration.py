"""What a live migration between the two lab daemons needs beyond a plain `migrate3`.

- `migrate_uri`: QEMU sends the guest's memory straight to the destination QEMU; without a URI libvirt would
  name the destination by the machine's hostname, which need not resolve. Both daemons are on 127.0.0.1.
- `destination_xml` and `persistent_xml`: the definition the guest runs with, and keeps, on the destination.
  They are the source's (`--migratable` for the live one: same UUID, or libvirt refuses with "Target domain
  uuid ... does not match source") with the source host's directory replaced by the destination's, so that
  the destination writes its console to a file of its own. They are taken once the balloon has settled, since
  the destination's libvirt believes the XML's currentMemory until the balloon next moves.
"""

from pathlib import Path

from django.conf import settings

from hosts.drivers import driver_for

from .daemons import LabHost, lab_hosts

LAB_MIGRATE_URI = "tcp://127.0.0.1"


def lab_dir() -> Path:
    return (Path(settings.STATE_DIR) / "lab").resolve()


def lab_host_for_uri(uri: str) -> LabHost | None:
    return next((host for host in lab_hosts(lab_dir()) if uri in (host.uri, host.tcp_uri)), None)


def migration_options(source_uri: str, destination_uri: str, uuid: str) -> dict[str, str]:
    """Keyword arguments for `LibvirtDriver.migrate` from one host to another: {} unless both are lab hosts."""
    source, destination = lab_host_for_uri(source_uri), lab_host_for_uri(destination_uri)
    if source is None or destination is None:
        return {}
    driver = driver_for(source_uri)
    # The live XML's currentMemory is libvirt's figure, which may lag a balloon still moving.
    driver.wait_for_balloon_to_settle(uuid)
    live_xml = driver.domain_xml(uuid, migratable=True)
    config_xml = driver.domain_xml(uuid)
    return {
        "migrate_uri": LAB_MIGRATE_URI,
        "destination_xml": _move_paths(live_xml, source, destination),
        "persistent_xml": _move_paths(config_xml, source, destination),
    }


def _move_paths(xml: str, source: LabHost, destination: LabHost) -> str:
    # Quoted, so that /hosts/lab1 never matches inside /hosts/lab10.
    return xml.replace(f"'{source.root}/", f"'{destination.root}/")
