use crate::jose::*;
