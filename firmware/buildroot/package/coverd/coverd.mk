################################################################################
#
# coverd - cover-session daemon, built with its own CMake project (cmake-package).
# The source is the coverd tree this BR2_EXTERNAL lives in (firmware/buildroot/ two
# levels down); a release build would set COVERD_SITE to a tarball or git URL instead.
#
################################################################################

COVERD_VERSION = 0.1.0
COVERD_SITE = $(BR2_EXTERNAL_COVERD_PATH)/../..
COVERD_SITE_METHOD = local
COVERD_LICENSE = TBD
COVERD_DEPENDENCIES = host-pkgconf sqlite gpsd mosquitto openssl mbedtls cjson inih

# Tests need cmocka and run on the build machine (tools/test.sh), not in the image.
COVERD_CONF_OPTS = -DCOVERD_TESTS=OFF

# The system user of the systemd unit (User=coverd); the same user for busybox init.
define COVERD_USERS
	coverd -1 coverd -1 * /var/lib/coverd - - coverd cover-session daemon
endef

define COVERD_PERMISSIONS
	/var/lib/coverd d 0750 coverd coverd - - - - -
endef

COVERD_BOARD = $(call qstrip,$(BR2_PACKAGE_COVERD_BOARD))
ifneq ($(COVERD_BOARD),)
define COVERD_INSTALL_BOARD_CONF
	test -f $(@D)/boards/$(COVERD_BOARD)/board.conf || \
		{ echo "coverd: no boards/$(COVERD_BOARD)/board.conf" >&2; exit 1; }
	cat $(@D)/boards/$(COVERD_BOARD)/board.conf >> $(TARGET_DIR)/etc/coverd/coverd.conf
endef
COVERD_POST_INSTALL_TARGET_HOOKS += COVERD_INSTALL_BOARD_CONF
endif

# The CMake install already puts the unit in /usr/lib/systemd/system; enable it.
define COVERD_INSTALL_INIT_SYSTEMD
	mkdir -p $(TARGET_DIR)/usr/lib/systemd/system/multi-user.target.wants
	ln -sf ../coverd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/multi-user.target.wants/coverd.service
endef

define COVERD_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(COVERD_PKGDIR)/S80coverd $(TARGET_DIR)/etc/init.d/S80coverd
endef

$(eval $(cmake-package))
