# external.mk - pulls in every package of the coverd BR2_EXTERNAL tree.
include $(sort $(wildcard $(BR2_EXTERNAL_COVERD_PATH)/package/*/*.mk))
