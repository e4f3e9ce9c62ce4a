# coverd_0.1.0.bb - Yocto/OpenEmbedded recipe for coverd, built with its own CMake
# project. Needs meta-oe (gpsd, cjson) and meta-networking (mosquitto, mbedtls) besides
# oe-core (sqlite3, libinih, openssl). Put it in a layer as recipes-support/coverd/.
#
# To build a working tree instead of a release, in local.conf:
#   INHERIT += "externalsrc"
#   EXTERNALSRC:pn-coverd = "/path/to/coverd"
# COVERD_BOARD picks boards/<name>/board.conf, appended to /etc/coverd/coverd.conf.

SUMMARY = "Driver-session daemon: hourly cover activations from GNSS and courier app events"
DESCRIPTION = "coverd decides from GNSS fixes and the courier app's events when a driver \
is working, keeps those periods as cover sessions in SQLite, splits them into hourly \
policy activations and delivers them to the insurer's backend over MQTT with mutual TLS."
SECTION = "net"
# The project has no license file yet; CLOSED skips the license checksum until it has.
LICENSE = "CLOSED"

SRC_URI = "git://example.invalid/coverd.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
PV = "0.1.0+git${SRCPV}"
S = "${WORKDIR}/git"

DEPENDS = "sqlite3 gpsd mosquitto mbedtls cjson libinih"

inherit cmake pkgconfig systemd useradd

COVERD_BOARD ?= ""

# Tests need cmocka and run on the build machine (tools/test.sh), not in the image. The
# unit directories follow the distro's layout (with or without usrmerge).
EXTRA_OECMAKE = "-DCOVERD_TESTS=OFF \
                 -DCOVERD_SYSTEMD_UNITDIR=${systemd_system_unitdir} \
                 -DCOVERD_SYSUSERSDIR=${nonarch_libdir}/sysusers.d \
                 -DCOVERD_TMPFILESDIR=${nonarch_libdir}/tmpfiles.d"

SYSTEMD_SERVICE:${PN} = "coverd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The unit runs as User=coverd; useradd creates it at image build time, so a read-only
# root filesystem works without systemd-sysusers at boot.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/coverd \
                       --no-create-home --shell /sbin/nologin coverd"

do_install:append() {
	if [ -n "${COVERD_BOARD}" ]; then
		cat ${S}/boards/${COVERD_BOARD}/board.conf >> ${D}${sysconfdir}/coverd/coverd.conf
	fi
}

CONFFILES:${PN} = "${sysconfdir}/coverd/coverd.conf"
FILES:${PN} += "${systemd_system_unitdir}/coverd.service \
                ${nonarch_libdir}/sysusers.d/coverd.conf \
                ${nonarch_libdir}/tmpfiles.d/coverd.conf"
RRECOMMENDS:${PN} = "gpsd"
