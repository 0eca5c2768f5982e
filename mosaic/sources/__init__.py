"""Where photos come from: a folder, Instagram, or an Instagram data export."""
