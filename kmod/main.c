// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO PCI variant driver for the IBM ISM (Internal Shared Memory) function.
 *
 * BAR 0 of an ISM function is 256 TiB and is written only with PCI
 * store-block (PCISTB); BAR 2 takes commands by PCISTB and answers to 8-byte
 * PCI loads.  vfio-pci-core cannot serve either: its region offsets give each
 * region 1 TiB (a 40-bit shift), and its BAR path uses ioread/iowrite, which
 * on machines with MIO become MIO instructions and split a write into 8-byte
 * stores.  This driver therefore reports its own region layout with a 48-bit
 * shift and moves BAR data with the function-handle instructions itself:
 * loads of 8, 4, 2 or 1 bytes and exactly one store-block per write().
 *
 * Config space still goes through vfio-pci-core (it virtualises BARs and
 * capabilities) by translating our offset into the core's encoding before
 * calling its exported read/write entry points, so no kernel patch is
 * needed.  mmap and VFIO_DEVICE_IOEVENTFD are refused: both decode offsets
 * with the core's 40-bit shift.
 */

#include <linux/module.h>
#include <linux/pci.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include <asm/pci_insn.h>
#include <asm/pci_io.h>

#define PCI_DEVICE_ID_IBM_ISM 0x04ed

#define ISM_VFIO_PCI_OFFSET_SHIFT 48
#define ISM_VFIO_PCI_OFFSET_MASK (BIT_ULL(ISM_VFIO_PCI_OFFSET_SHIFT) - 1)
#define ISM_VFIO_PCI_OFFSET_TO_INDEX(off) ((u64)(off) >> ISM_VFIO_PCI_OFFSET_SHIFT)
#define ISM_VFIO_PCI_INDEX_TO_OFFSET(index) \
	((u64)(index) << ISM_VFIO_PCI_OFFSET_SHIFT)

/* A PCI store-block must not cross this boundary of the BAR offset. */
#define ISM_VFIO_PCI_STB_BOUNDARY SZ_4K

struct ism_vfio_pci_core_device {
	struct vfio_pci_core_device core_device;
	/* Bounce buffers of zdev->maxstbl bytes for store-block writes. */
	struct kmem_cache *store_cache;
	/* Older kernels keep a pointer to the name: it lives as long as the cache. */
	char cache_name[48];
};

static struct ism_vfio_pci_core_device *
ism_vfio_pci_from_vdev(struct vfio_device *core_vdev)
{
	return container_of(core_vdev, struct ism_vfio_pci_core_device,
			    core_device.vdev);
}

/*
 * Fills size, offset and flags of one region.  Only the BARs and config
 * space carry data; ROM and VGA exist as indices but are empty, anything past
 * them is unknown.
 */
static int ism_vfio_pci_fill_region_info(struct ism_vfio_pci_core_device *ivdev,
					 struct vfio_region_info *info)
{
	struct pci_dev *pdev = ivdev->core_device.pdev;

	info->cap_offset = 0;
	info->offset = ISM_VFIO_PCI_INDEX_TO_OFFSET(info->index);
	switch (info->index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info->size = pdev->cfg_size;
		info->flags = VFIO_REGION_INFO_FLAG_READ |
			      VFIO_REGION_INFO_FLAG_WRITE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
		info->size = pci_resource_len(pdev, info->index);
		info->flags = 0;
		if (info->size)
			info->flags = VFIO_REGION_INFO_FLAG_READ |
				      VFIO_REGION_INFO_FLAG_WRITE;
		break;
	case VFIO_PCI_ROM_REGION_INDEX:
	case VFIO_PCI_VGA_REGION_INDEX:
		info->size = 0;
		info->flags = 0;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

#ifdef ISM_VFIO_PCI_HAVE_GET_REGION_INFO_CAPS
static int ism_vfio_pci_get_region_info_caps(struct vfio_device *core_vdev,
					     struct vfio_region_info *info,
					     struct vfio_info_cap *caps)
{
	return ism_vfio_pci_fill_region_info(ism_vfio_pci_from_vdev(core_vdev),
					     info);
}
#else
static long ism_vfio_pci_ioctl_get_region_info(struct vfio_device *core_vdev,
					       struct vfio_region_info __user *arg)
{
	unsigned long minsz = offsetofend(struct vfio_region_info, offset);
	struct vfio_region_info info;
	int ret;

	if (copy_from_user(&info, arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	ret = ism_vfio_pci_fill_region_info(ism_vfio_pci_from_vdev(core_vdev),
					    &info);
	if (ret)
		return ret;
	return copy_to_user(arg, &info, minsz) ? -EFAULT : 0;
}
#endif

static long ism_vfio_pci_ioctl(struct vfio_device *core_vdev, unsigned int cmd,
			       unsigned long arg)
{
	switch (cmd) {
#ifndef ISM_VFIO_PCI_HAVE_GET_REGION_INFO_CAPS
	case VFIO_DEVICE_GET_REGION_INFO:
		return ism_vfio_pci_ioctl_get_region_info(core_vdev,
							  (void __user *)arg);
#endif
	case VFIO_DEVICE_IOEVENTFD:
		/* The core would decode the offset with its 40-bit shift. */
		return -ENOTTY;
	default:
		return vfio_pci_core_ioctl(core_vdev, cmd, arg);
	}
}

/* Largest naturally aligned load (8, 4, 2 or 1 bytes) at @off within @left. */
static size_t ism_vfio_pci_load_len(u64 off, size_t left)
{
	size_t len = 8;

	while (len > 1 && (!IS_ALIGNED(off, len) || len > left))
		len >>= 1;
	return len;
}

static int ism_vfio_pci_load_to_user(char __user *buf, u64 data, size_t len)
{
	u32 v32 = data;
	u16 v16 = data;
	u8 v8 = data;

	switch (len) {
	case 8:
		return copy_to_user(buf, &data, 8) ? -EFAULT : 0;
	case 4:
		return copy_to_user(buf, &v32, 4) ? -EFAULT : 0;
	case 2:
		return copy_to_user(buf, &v16, 2) ? -EFAULT : 0;
	default:
		return copy_to_user(buf, &v8, 1) ? -EFAULT : 0;
	}
}

/*
 * Reads with function-handle PCI loads: the MIO forms behind ioread*() are
 * not usable for ISM.  A read starting past the end of the BAR fails, one
 * running past it is shortened.
 */
static ssize_t ism_vfio_pci_bar_read(struct ism_vfio_pci_core_device *ivdev,
				     int bar, char __user *buf, size_t count,
				     u64 pos)
{
	struct pci_dev *pdev = ivdev->core_device.pdev;
	struct zpci_dev *zdev = to_zpci(pdev);
	u64 size = pci_resource_len(pdev, bar);
	size_t done = 0;

	if (pos >= size)
		return -EINVAL;
	count = min_t(u64, count, size - pos);

	while (done < count) {
		size_t len = ism_vfio_pci_load_len(pos + done, count - done);
		u64 req = ZPCI_CREATE_REQ(READ_ONCE(zdev->fh), bar, len);
		u64 data;
		int ret;

		ret = __zpci_load(&data, req, pos + done);
		if (!ret)
			ret = ism_vfio_pci_load_to_user(buf + done, data, len);
		if (ret)
			return done ? done : ret;
		done += len;
		/* A long read stays killable and lets others run. */
		if (fatal_signal_pending(current))
			break;
		cond_resched();
	}
	return done;
}

/*
 * One write() is exactly one PCI store-block: ISM moves a DMB update or a
 * command in a single operation, so a write that cannot be done whole is
 * refused rather than split or shortened.
 */
static ssize_t ism_vfio_pci_bar_write(struct ism_vfio_pci_core_device *ivdev,
				      int bar, const char __user *buf,
				      size_t count, u64 pos)
{
	struct pci_dev *pdev = ivdev->core_device.pdev;
	struct zpci_dev *zdev = to_zpci(pdev);
	u64 size = pci_resource_len(pdev, bar);
	u64 req;
	void *data;
	int ret;

	if (!count)
		return 0;
	if (count > zdev->maxstbl)
		return -EINVAL;
	if (pos >= size || count > size - pos)
		return -EINVAL;
	if ((pos & (ISM_VFIO_PCI_STB_BOUNDARY - 1)) + count >
	    ISM_VFIO_PCI_STB_BOUNDARY)
		return -EINVAL;

	data = kmem_cache_alloc(ivdev->store_cache, GFP_KERNEL);
	if (!data)
		return -ENOMEM;
	if (copy_from_user(data, buf, count)) {
		ret = -EFAULT;
		goto out_free;
	}
	req = ZPCI_CREATE_REQ(READ_ONCE(zdev->fh), bar, count);
	ret = __zpci_store_block(data, req, pos);
out_free:
	kmem_cache_free(ivdev->store_cache, data);
	if (ret)
		return ret;
	return count;
}

/*
 * Config space: translate our offset into the core's encoding and let the
 * core emulate it.  Config space is at most 4 KiB, so it always fits.
 */
static int ism_vfio_pci_config_pos(loff_t *ppos, loff_t *core_pos)
{
	u64 pos = *ppos & ISM_VFIO_PCI_OFFSET_MASK;

	if (pos > VFIO_PCI_OFFSET_MASK)
		return -EINVAL;
	*core_pos = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + pos;
	return 0;
}

static ssize_t ism_vfio_pci_config_read(struct vfio_device *core_vdev,
					char __user *buf, size_t count,
					loff_t *ppos)
{
	loff_t core_pos;
	ssize_t ret = ism_vfio_pci_config_pos(ppos, &core_pos);

	if (!ret)
		ret = vfio_pci_core_read(core_vdev, buf, count, &core_pos);
	if (ret > 0)
		*ppos += ret;
	return ret;
}

static ssize_t ism_vfio_pci_config_write(struct vfio_device *core_vdev,
					 const char __user *buf, size_t count,
					 loff_t *ppos)
{
	loff_t core_pos;
	ssize_t ret = ism_vfio_pci_config_pos(ppos, &core_pos);

	if (!ret)
		ret = vfio_pci_core_write(core_vdev, buf, count, &core_pos);
	if (ret > 0)
		*ppos += ret;
	return ret;
}

static ssize_t ism_vfio_pci_read(struct vfio_device *core_vdev,
				 char __user *buf, size_t count, loff_t *ppos)
{
	struct ism_vfio_pci_core_device *ivdev = ism_vfio_pci_from_vdev(core_vdev);
	u64 index = ISM_VFIO_PCI_OFFSET_TO_INDEX(*ppos);
	u64 pos = *ppos & ISM_VFIO_PCI_OFFSET_MASK;
	ssize_t ret;

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return ism_vfio_pci_config_read(core_vdev, buf, count, ppos);
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
		ret = ism_vfio_pci_bar_read(ivdev, index, buf, count, pos);
		if (ret > 0)
			*ppos += ret;
		return ret;
	default:
		return -EINVAL;
	}
}

static ssize_t ism_vfio_pci_write(struct vfio_device *core_vdev,
				  const char __user *buf, size_t count,
				  loff_t *ppos)
{
	struct ism_vfio_pci_core_device *ivdev = ism_vfio_pci_from_vdev(core_vdev);
	u64 index = ISM_VFIO_PCI_OFFSET_TO_INDEX(*ppos);
	u64 pos = *ppos & ISM_VFIO_PCI_OFFSET_MASK;
	ssize_t ret;

	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		return ism_vfio_pci_config_write(core_vdev, buf, count, ppos);
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
		ret = ism_vfio_pci_bar_write(ivdev, index, buf, count, pos);
		if (ret > 0)
			*ppos += ret;
		return ret;
	default:
		return -EINVAL;
	}
}

static int ism_vfio_pci_open_device(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev =
		container_of(core_vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(vdev);
	if (ret)
		return ret;
	vfio_pci_core_finish_enable(vdev);
	return 0;
}

/*
 * The bounce buffer is 4 KiB aligned so that it never crosses a page, is
 * whitelisted for user copies (hardened usercopy) and is charged to the
 * caller's memory cgroup.
 */
static struct kmem_cache *ism_vfio_pci_cache_create(const char *name,
						    unsigned int size)
{
#ifdef ISM_VFIO_PCI_HAVE_KMEM_CACHE_ARGS
	struct kmem_cache_args args = {
		.align = SZ_4K,
		.useroffset = 0,
		.usersize = size,
	};

	return kmem_cache_create(name, size, &args, SLAB_ACCOUNT);
#else
	return kmem_cache_create_usercopy(name, size, SZ_4K, SLAB_ACCOUNT, 0,
					  size, NULL);
#endif
}

static int ism_vfio_pci_init_dev(struct vfio_device *core_vdev)
{
	struct ism_vfio_pci_core_device *ivdev = ism_vfio_pci_from_vdev(core_vdev);
	struct pci_dev *pdev = to_pci_dev(core_vdev->dev);
	struct zpci_dev *zdev = to_zpci(pdev);
	int ret;

	if (!zdev->maxstbl)
		return -ENODEV;
	snprintf(ivdev->cache_name, sizeof(ivdev->cache_name), "%s-%s",
		 KBUILD_MODNAME, pci_name(pdev));
	ivdev->store_cache = ism_vfio_pci_cache_create(ivdev->cache_name,
						       zdev->maxstbl);
	if (!ivdev->store_cache)
		return -ENOMEM;

	ret = vfio_pci_core_init_dev(core_vdev);
	if (ret) {
		kmem_cache_destroy(ivdev->store_cache);
		ivdev->store_cache = NULL;
	}
	return ret;
}

static void ism_vfio_pci_release_dev(struct vfio_device *core_vdev)
{
	struct ism_vfio_pci_core_device *ivdev = ism_vfio_pci_from_vdev(core_vdev);

	kmem_cache_destroy(ivdev->store_cache);
	/* Last: on some kernels this frees the device itself. */
	vfio_pci_core_release_dev(core_vdev);
}

static const struct vfio_device_ops ism_vfio_pci_ops = {
	.name = "ism-vfio-pci",
	.init = ism_vfio_pci_init_dev,
	.release = ism_vfio_pci_release_dev,
	.open_device = ism_vfio_pci_open_device,
	.close_device = vfio_pci_core_close_device,
	.ioctl = ism_vfio_pci_ioctl,
#ifdef ISM_VFIO_PCI_HAVE_GET_REGION_INFO_CAPS
	.get_region_info_caps = ism_vfio_pci_get_region_info_caps,
#endif
	.device_feature = vfio_pci_core_ioctl_feature,
	.read = ism_vfio_pci_read,
	.write = ism_vfio_pci_write,
	.request = vfio_pci_core_request,
	.match = vfio_pci_core_match,
#ifdef ISM_VFIO_PCI_HAVE_MATCH_TOKEN_UUID
	.match_token_uuid = vfio_pci_core_match_token_uuid,
#endif
#ifdef ISM_VFIO_PCI_HAVE_IOMMUFD_OPS
	.bind_iommufd = vfio_iommufd_physical_bind,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
#endif
#ifdef ISM_VFIO_PCI_HAVE_DETACH_IOAS
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
#endif
};

static int ism_vfio_pci_probe(struct pci_dev *pdev,
			      const struct pci_device_id *id)
{
	struct ism_vfio_pci_core_device *ivdev;
	int ret;

	ivdev = vfio_alloc_device(ism_vfio_pci_core_device, core_device.vdev,
				  &pdev->dev, &ism_vfio_pci_ops);
	if (IS_ERR(ivdev))
		return PTR_ERR(ivdev);

	dev_set_drvdata(&pdev->dev, &ivdev->core_device);
	ret = vfio_pci_core_register_device(&ivdev->core_device);
	if (ret)
		vfio_put_device(&ivdev->core_device.vdev);
	return ret;
}

static void ism_vfio_pci_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *core_device = dev_get_drvdata(&pdev->dev);

	vfio_pci_core_unregister_device(core_device);
	vfio_put_device(&core_device->vdev);
}

static const struct pci_device_id ism_vfio_pci_table[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_VENDOR_ID_IBM,
					  PCI_DEVICE_ID_IBM_ISM) },
	{}
};
MODULE_DEVICE_TABLE(pci, ism_vfio_pci_table);

static struct pci_driver ism_vfio_pci_driver = {
	.name = KBUILD_MODNAME,
	.id_table = ism_vfio_pci_table,
	.probe = ism_vfio_pci_probe,
	.remove = ism_vfio_pci_remove,
	.err_handler = &vfio_pci_core_err_handlers,
	.driver_managed_dma = true,
};
module_pci_driver(ism_vfio_pci_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("VFIO PCI variant driver for the IBM ISM function");
