/* paths.h - file names inside the state directory, shared by coverd and coverctl. */
#ifndef COVERD_PATHS_H
#define COVERD_PATHS_H

#define COVERD_DB_NAME "coverd.db"          /* <state_dir>/coverd.db */
#define COVERD_SOCKET_NAME "coverd.sock"    /* default <state_dir>/coverd.sock */
#define COVERD_KEY_NAME "device.key"        /* default signing key, mode 0600 */
#define COVERD_DEFAULT_CONFIG "/etc/coverd/coverd.conf"
#define COVERD_DEFAULT_STATE_DIR "/var/lib/coverd"

#endif
