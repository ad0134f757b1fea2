/// The styles shipped with Reel, written for video.
enum BuiltInStyles {
    static let all: [Style] = [
        Style(
            name: "cinematic",
            prompt: "cinematic film still of {prompt}, shallow depth of field, anamorphic lens, film grain, "
                + "dramatic lighting, smooth camera movement",
            negativePrompt: "cartoon, illustration, low quality, jittery motion, flicker", labelZH: "电影感"),
        Style(
            name: "product-turntable",
            prompt: "{prompt}, product slowly rotating on a turntable, seamless pure white background, soft studio "
                + "lighting, sharp focus, commercial product video",
            negativePrompt: "cluttered background, shadows on the wall, text, watermark, motion blur",
            labelZH: "白底产品旋转"),
    ]
}
